package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testNow is the clock of every golden file.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// testPump is online, in use, and has every field set.
func testPump() *medfleetv1.Device {
	return &medfleetv1.Device{
		Name:         "devices/pump-0001",
		Profile:      "infusion-pump",
		Model:        "Alaris 8100",
		Manufacturer: "BD",
		Serial:       "SN-81-004411",
		Udi:          "(01)00885403810010(21)SN-81-004411",
		Site:         "north",
		Labels:       map[string]string{"unit": "4-west", "floor": "4", "bed": "12"},
		CreateTime:   ts(time.Date(2026, 1, 10, 9, 30, 0, 0, time.UTC)),
		UpdateTime:   ts(time.Date(2026, 2, 20, 14, 5, 0, 0, time.UTC)),
		Etag:         "7342",
		Status: &medfleetv1.DeviceStatus{
			UsageSeconds:     4444200,
			UsageHours:       1234.5,
			UsageCounter:     18000,
			UsageResets:      1,
			LastSeq:          9911,
			FirmwareVersion:  "2.4.1",
			ClinicalState:    medfleetv1.ClinicalState_CLINICAL_STATE_IN_USE,
			Connectivity:     medfleetv1.Connectivity_CONNECTIVITY_ONLINE,
			LastSeenTime:     ts(testNow.Add(-4 * time.Second)),
			RegistrationTime: ts(testNow.Add(-3*time.Hour - 20*time.Minute)),
			LifetimeSeconds:  300,
			BatteryPercent:   proto.Float64(87),
			WifiBssid:        "00:1a:2b:3c:4d:5e",
			WifiRssiDbm:      proto.Float64(-61),
			AlarmCounts:      map[string]float64{"occlusion": 3, "air-in-line": 1},
			Telemetry:        map[string]float64{"rate_ml_h": 125.5, "volume_infused_ml": 340},
			ReportsAccepted:  1234,
			ReportsDuplicate: 2,
		},
	}
}

// testCPAP is offline since three hours.
func testCPAP() *medfleetv1.Device {
	return &medfleetv1.Device{
		Name:         "devices/cpap-0002",
		Profile:      "cpap",
		Model:        "AirSense 11",
		Manufacturer: "ResMed",
		CreateTime:   ts(time.Date(2026, 1, 11, 8, 0, 0, 0, time.UTC)),
		UpdateTime:   ts(time.Date(2026, 1, 11, 8, 0, 0, 0, time.UTC)),
		Etag:         "5120",
		Status: &medfleetv1.DeviceStatus{
			UsageSeconds:     30780,
			UsageHours:       8.55,
			FirmwareVersion:  "SW 04.05",
			ClinicalState:    medfleetv1.ClinicalState_CLINICAL_STATE_IDLE,
			Connectivity:     medfleetv1.Connectivity_CONNECTIVITY_OFFLINE,
			LastSeenTime:     ts(testNow.Add(-3*time.Hour - 12*time.Minute)),
			RegistrationTime: ts(testNow.Add(-50 * time.Hour)),
			ReportsAccepted:  88,
		},
	}
}

// testReader was registered but has never been seen.
func testReader() *medfleetv1.Device {
	return &medfleetv1.Device{
		Name:       "devices/rfid-0003",
		Profile:    "rfid-reader",
		Model:      "ZR-200",
		CreateTime: ts(time.Date(2026, 2, 27, 16, 45, 0, 0, time.UTC)),
		UpdateTime: ts(time.Date(2026, 2, 27, 16, 45, 0, 0, time.UTC)),
		Etag:       "6001",
		Status: &medfleetv1.DeviceStatus{
			Connectivity: medfleetv1.Connectivity_CONNECTIVITY_OFFLINE,
		},
	}
}

// testDecommissioned is a device that was decommissioned yesterday, as
// DeleteDevice returns it.
func testDecommissioned() *medfleetv1.Device {
	d := testReader()
	d.Name = "devices/rfid-0004"
	d.DecommissionTime = ts(testNow.Add(-26 * time.Hour))
	d.UpdateTime = d.DecommissionTime
	d.Etag = "6120"
	return d
}

// testList is the first page of a list of 7 devices.
func testList() *medfleetv1.ListDevicesResponse {
	return &medfleetv1.ListDevicesResponse{
		Devices:       []*medfleetv1.Device{testCPAP(), testPump(), testReader()},
		NextPageToken: "Y3BhcC0wMDA0",
		TotalSize:     7,
	}
}

// testListAll is what --all --show-decommissioned merges from every page.
func testListAll() *medfleetv1.ListDevicesResponse {
	return &medfleetv1.ListDevicesResponse{
		Devices:   []*medfleetv1.Device{testCPAP(), testPump(), testReader(), testDecommissioned()},
		TotalSize: 4,
	}
}

func testUsers() []*medfleetv1.User {
	return []*medfleetv1.User{
		{Name: "users/admin", Role: medfleetv1.Role_ROLE_ADMIN, Description: "created on first start", CreateTime: ts(testNow.Add(-40 * 24 * time.Hour)), Creator: "system", Etag: "3"},
		{Name: "users/alice", Role: medfleetv1.Role_ROLE_BIOMED, Site: "north", Description: "Alice Meyer, clinical engineering, ext. 4711", CreateTime: ts(testNow.Add(-3 * time.Hour)), Creator: "users/admin", Etag: "812"},
		{Name: "users/rollout-bot", Role: medfleetv1.Role_ROLE_AUTOMATION, CreateTime: ts(testNow.Add(-26 * time.Hour)), Creator: "users/alice", Etag: "640"},
	}
}

func testTokens() []*medfleetv1.Token {
	return []*medfleetv1.Token{
		{Name: "users/admin/tokens/wx1se45w83vwvqrx", Description: "first administrator token", CreateTime: ts(testNow.Add(-40 * 24 * time.Hour)), LastUseTime: ts(testNow.Add(-4 * time.Second))},
		{Name: "users/alice/tokens/v47ze88gkw2a0vv8", Site: "north", Description: "laptop", CreateTime: ts(testNow.Add(-3 * time.Hour)), ExpireTime: ts(testNow.Add(27 * 24 * time.Hour))},
		{Name: "users/rollout-bot/tokens/fxl2vioodj7jb1p5", CreateTime: ts(testNow.Add(-31 * 24 * time.Hour)), ExpireTime: ts(testNow.Add(-24 * time.Hour)), LastUseTime: ts(testNow.Add(-25 * time.Hour))},
	}
}

func testCredentialPSK() *medfleetv1.DeviceCredential {
	return &medfleetv1.DeviceCredential{
		Name: "devices/pump-0001/credential", Kind: medfleetv1.CredentialKind_CREDENTIAL_KIND_PSK, Generation: 3,
		IssueTime: ts(testNow.Add(-50 * time.Hour)), Issuer: "enrollments/1p4mk7m2h987935h", Etag: "9120",
	}
}

func testCredentialCert() *medfleetv1.DeviceCredential {
	return &medfleetv1.DeviceCredential{
		Name: "devices/cpap-0002/credential", Kind: medfleetv1.CredentialKind_CREDENTIAL_KIND_CERTIFICATE, Generation: 1,
		CertificateSerial: "5c1f0e7a9b2d4c31", CertificateExpireTime: ts(testNow.Add(398 * 24 * time.Hour)),
		IssueTime: ts(testNow.Add(-2 * time.Hour)), Issuer: "users/alice", RevokeTime: ts(testNow.Add(-12 * time.Minute)), Etag: "9344",
	}
}

// testAudit is a page of the audit log that stopped at --limit.
func testAudit() *medfleetv1.ListAuditRecordsResponse {
	rec := func(seq uint64, actor, role, action, target, outcome string) *medfleetv1.AuditRecord {
		return &medfleetv1.AuditRecord{
			Name: fmt.Sprintf("auditRecords/%020d", seq), Sequence: seq, Time: ts(testNow.Add(-time.Duration(100-seq) * time.Minute)),
			Actor: actor, Role: role, Action: action, Target: target, Source: "10.20.0.14:51872", Outcome: outcome,
		}
	}
	return &medfleetv1.ListAuditRecordsResponse{
		Records: []*medfleetv1.AuditRecord{
			rec(41, "users/alice", "biomed", "/medfleet.v1.DeviceService/CreateDevice", "devices/pump-0001", "OK"),
			rec(42, "users/alice", "biomed", "/medfleet.v1.CredentialService/IssueDeviceCredential", "devices/pump-0001", "OK"),
			rec(43, "devices/pump-0001", "device", "device.register", "devices/pump-0001", "OK"),
			rec(44, "users/rollout-bot", "automation", "/medfleet.v1.AccessService/CreateUser", "users/mallory", "PermissionDenied"),
		},
		NextPageToken: "NDQ",
		HeadSequence:  97,
		HeadHash:      []byte{0x3a, 0x7f, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd},
	}
}

// checkGolden compares got with testdata/name, or rewrites the file under
// -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got), run go test -update if the change is meant:\n%s", path, diff)
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"device_list.golden", func(b *bytes.Buffer) error { return writeDeviceTable(b, testList(), testNow) }},
		{"device_list.json.golden", func(b *bytes.Buffer) error { return writeJSON(b, testList()) }},
		{"device_get.golden", func(b *bytes.Buffer) error { return writeDevice(b, testPump(), testNow) }},
		{"device_list_all.golden", func(b *bytes.Buffer) error { return writeDeviceTable(b, testListAll(), testNow) }},
		{"device_list_empty.golden", func(b *bytes.Buffer) error {
			return writeDeviceTable(b, &medfleetv1.ListDevicesResponse{}, testNow)
		}},
		{"device_get.json.golden", func(b *bytes.Buffer) error { return writeJSON(b, testPump()) }},
		{"device_get_never_seen.golden", func(b *bytes.Buffer) error { return writeDevice(b, testReader(), testNow) }},
		{"device_get_decommissioned.golden", func(b *bytes.Buffer) error { return writeDevice(b, testDecommissioned(), testNow) }},
		{"device_delete.golden", func(b *bytes.Buffer) error { return writeDecommissioned(b, testDecommissioned(), testNow) }},
		{"device_delete.json.golden", func(b *bytes.Buffer) error { return writeJSON(b, testDecommissioned()) }},
		{"whoami.golden", func(b *bytes.Buffer) error {
			return writeCaller(b, &medfleetv1.Caller{User: "users/alice", Role: medfleetv1.Role_ROLE_BIOMED, Site: "north", AuthenticatedBy: "certificate"})
		}},
		{"user_get.golden", func(b *bytes.Buffer) error { return writeUser(b, testUsers()[1], testNow) }},
		{"user_list.golden", func(b *bytes.Buffer) error { return writeUserTable(b, testUsers(), testNow) }},
		{"user_list_empty.golden", func(b *bytes.Buffer) error { return writeUserTable(b, nil, testNow) }},
		{"user_cert.golden", func(b *bytes.Buffer) error {
			return writeUserCertFiles(b, userCertFiles{Certificate: "alice.crt", PrivateKey: "alice.key", ExpireTime: testNow.Add(90 * 24 * time.Hour)}, testNow)
		}},
		{"token_list.golden", func(b *bytes.Buffer) error { return writeTokenTable(b, testTokens(), testNow) }},
		{"token_list.json.golden", func(b *bytes.Buffer) error { return writeJSON(b, &medfleetv1.ListTokensResponse{Tokens: testTokens()}) }},
		{"credential_get.golden", func(b *bytes.Buffer) error { return writeCredential(b, testCredentialPSK(), testNow) }},
		{"credential_get_cert_revoked.golden", func(b *bytes.Buffer) error { return writeCredential(b, testCredentialCert(), testNow) }},
		{"audit_list.golden", func(b *bytes.Buffer) error { return writeAuditTable(b, testAudit()) }},
		{"audit_list.json.golden", func(b *bytes.Buffer) error { return writeJSON(b, testAudit()) }},
		{"audit_list_empty.golden", func(b *bytes.Buffer) error { return writeAuditTable(b, &medfleetv1.ListAuditRecordsResponse{}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatalf("write: %v", err)
			}
			checkGolden(t, tc.name, b.Bytes())
		})
	}
}

// TestJSONRoundTrip checks that -o json loses nothing: the golden JSON
// decodes to the messages it was made from.
func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		file string
		want proto.Message
	}{
		{"device_get.json.golden", testPump()},
		{"device_list.json.golden", testList()},
		{"token_list.json.golden", &medfleetv1.ListTokensResponse{Tokens: testTokens()}},
		{"audit_list.json.golden", testAudit()},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got := tc.want.ProtoReflect().New().Interface()
			if err := protojson.Unmarshal(b, got); err != nil {
				t.Fatalf("protojson.Unmarshal: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("decoded %s differs (-want +got):\n%s", tc.file, diff)
			}
		})
	}
}

func TestListFooter(t *testing.T) {
	tests := []struct {
		name  string
		shown int
		total int32
		next  string
		want  string
	}{
		{name: "empty", shown: 0, total: 0, want: "0 devices"},
		{name: "one", shown: 1, total: 1, want: "1 device"},
		{name: "all on one page", shown: 3, total: 3, want: "3 devices"},
		{name: "uncounted", shown: 3, total: 0, want: "3 devices"},
		{name: "first of several pages", shown: 50, total: 120, next: "abc", want: "50 of 120 devices, more: --page-token abc"},
		{name: "last of several pages", shown: 20, total: 120, want: "20 of 120 devices"},
		{name: "more pages, uncounted", shown: 50, total: 0, next: "abc", want: "50 devices, more: --page-token abc"},
		{name: "one of several", shown: 1, total: 5, want: "1 of 5 devices"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := listFooter(tc.shown, tc.total, tc.next); got != tc.want {
				t.Errorf("listFooter(%d, %d, %q) = %q, want %q", tc.shown, tc.total, tc.next, got, tc.want)
			}
		})
	}
}

func TestAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s ago"},
		{4*time.Second + 900*time.Millisecond, "4s ago"},
		{59 * time.Second, "59s ago"},
		{time.Minute, "1m ago"},
		{59*time.Minute + 59*time.Second, "59m ago"},
		{3*time.Hour + 12*time.Minute, "3h ago"},
		{47*time.Hour + 59*time.Minute, "47h ago"},
		{48 * time.Hour, "2d ago"},
		{400 * 24 * time.Hour, "400d ago"},
		{-4 * time.Second, "in 4s"},
	}
	for _, tc := range tests {
		if got := age(tc.d); got != tc.want {
			t.Errorf("age(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestCell(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "-"},
		{"2.4.1", "2.4.1"},
		{"Alaris 8100", "Alaris 8100"},
		{"Zürich-Ost", "Zürich-Ost"},
		{"\x1b[2Jowned", `"\x1b[2Jowned"`},
		{"a\tb", `"a\tb"`},
		{"line\nbreak", `"line\nbreak"`},
	}
	for _, tc := range tests {
		if got := cell(tc.in); got != tc.want {
			t.Errorf("cell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestStateWords(t *testing.T) {
	states := map[medfleetv1.ClinicalState]string{
		medfleetv1.ClinicalState_CLINICAL_STATE_UNSPECIFIED: "-",
		medfleetv1.ClinicalState_CLINICAL_STATE_IDLE:        "idle",
		medfleetv1.ClinicalState_CLINICAL_STATE_IN_USE:      "in_use",
		medfleetv1.ClinicalState_CLINICAL_STATE_CHARGING:    "charging",
		medfleetv1.ClinicalState_CLINICAL_STATE_FAULT:       "fault",
	}
	for s, want := range states {
		if got := clinicalStateWord(s); got != want {
			t.Errorf("clinicalStateWord(%v) = %q, want %q", s, got, want)
		}
		// What the table prints, --state accepts.
		if _, ok := clinicalStates[want]; want != "-" && !ok {
			t.Errorf("clinicalStateWord(%v) = %q, which --state does not accept", s, want)
		}
	}
	conns := map[medfleetv1.Connectivity]string{
		medfleetv1.Connectivity_CONNECTIVITY_UNSPECIFIED: "-",
		medfleetv1.Connectivity_CONNECTIVITY_ONLINE:      "online",
		medfleetv1.Connectivity_CONNECTIVITY_OFFLINE:     "offline",
	}
	for c, want := range conns {
		if got := connectivityWord(c); got != want {
			t.Errorf("connectivityWord(%v) = %q, want %q", c, got, want)
		}
	}
}

func TestShortAction(t *testing.T) {
	tests := map[string]string{
		"/medfleet.v1.DeviceService/CreateDevice": "CreateDevice",
		"/grpc.health.v1.Health/Check":            "Check",
		"device.register":                         "device.register",
		"":                                        "",
	}
	for in, want := range tests {
		if got := shortAction(in); got != want {
			t.Errorf("shortAction(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpires(t *testing.T) {
	tests := []struct {
		t    *timestamppb.Timestamp
		want string
	}{
		{nil, "never"},
		{ts(testNow.Add(29 * 24 * time.Hour)), "in 29d"},
		{ts(testNow.Add(90 * time.Second)), "in 1m"},
		{ts(testNow), "expired 0s ago"},
		{ts(testNow.Add(-3 * time.Hour)), "expired 3h ago"},
	}
	for _, tc := range tests {
		if got := expires(tc.t, testNow); got != tc.want {
			t.Errorf("expires(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestAuditSummary(t *testing.T) {
	tests := []struct {
		v    auditVerification
		want string
	}{
		{auditVerification{}, "audit log verified: 0 records, head 0"},
		{auditVerification{Records: 1, HeadSequence: 1, HeadHash: "00112233445566778899aabbccddeeff"}, "audit log verified: 1 record, head 1 0011223344556677"},
		{auditVerification{Records: 97, HeadSequence: 97, HeadHash: "3a7f0011223344556677"}, "audit log verified: 97 records, head 97 3a7f001122334455"},
	}
	for _, tc := range tests {
		if got := tc.v.summary(); got != tc.want {
			t.Errorf("summary(%+v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
