package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestParseEPC(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "E28011700000020F1A2B3C4D", want: "E28011700000020F1A2B3C4D"},
		{in: "e28011700000020f1a2b3c4d", want: "E28011700000020F1A2B3C4D"},
		{in: " 3034257BF400B7800004CB2F\n", want: "3034257BF400B7800004CB2F"},
		{in: "0123abcd", want: "0123ABCD"},
		{in: strings.Repeat("F", 64), want: strings.Repeat("F", 64)},
		{in: "0123abc", wantErr: true},
		{in: strings.Repeat("F", 65), wantErr: true},
		{in: "E280-1170-0000", wantErr: true},
		{in: "G28011700000020F", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseEPC(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseEPC(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseDeviceRef(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  string
	}{
		{in: "pump-0001", want: "devices/pump-0001"},
		{in: "devices/pump-0001", want: "devices/pump-0001"},
		{in: "tags/e28011700000020f1a2b3c4d", want: "tags/E28011700000020F1A2B3C4D"},
		{in: "tags/E28011700000020F1A2B3C4D", want: "tags/E28011700000020F1A2B3C4D"},
		{in: "tags/", wantErr: `EPC ""`},
		{in: "tags/pump-0001", wantErr: `EPC "pump-0001": want 8 to 64 hex digits`},
		{in: "pump 1", wantErr: `device id "pump 1": want 1 to 64 characters of [A-Za-z0-9._-], starting with a letter or digit, or tags/EPC`},
		{in: "devices/", wantErr: `device id "devices/"`},
		{in: "zones/4w-401-bed", wantErr: `device id "zones/4w-401-bed"`},
	}
	for _, tc := range tests {
		got, err := parseDeviceRef(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseDeviceRef(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseDeviceRef(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseAvailability(t *testing.T) {
	tests := []struct {
		in      string
		want    medfleetv1.Availability
		wantErr bool
	}{
		{in: "available", want: medfleetv1.Availability_AVAILABILITY_AVAILABLE},
		{in: "in_use", want: medfleetv1.Availability_AVAILABILITY_IN_USE},
		{in: "in-use", want: medfleetv1.Availability_AVAILABILITY_IN_USE},
		{in: "SOILED", want: medfleetv1.Availability_AVAILABILITY_SOILED},
		{in: "in_maintenance", want: medfleetv1.Availability_AVAILABILITY_IN_MAINTENANCE},
		{in: "Out-Of-Service", want: medfleetv1.Availability_AVAILABILITY_OUT_OF_SERVICE},
		{in: "decommissioned", wantErr: true}, // "device delete"'s to set
		{in: "unknown", wantErr: true},
		{in: "AVAILABILITY_AVAILABLE", wantErr: true},
		{in: "clean", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseAvailability(tc.in)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "want available, in_use, soiled, in_maintenance or out_of_service") {
				t.Errorf("parseAvailability(%q) = %v, %v; want an error listing the availabilities", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseAvailability(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestAvailabilityWord checks that every word printed is one the commands
// take back, and that unset reads as unknown.
func TestAvailabilityWord(t *testing.T) {
	for word, a := range availabilities {
		if got := availabilityWord(a); got != word {
			t.Errorf("availabilityWord(%v) = %q, want %q", a, got, word)
		}
	}
	for a, want := range map[medfleetv1.Availability]string{
		medfleetv1.Availability_AVAILABILITY_UNSPECIFIED:    "unknown",
		medfleetv1.Availability_AVAILABILITY_DECOMMISSIONED: "decommissioned",
	} {
		if got := availabilityWord(a); got != want {
			t.Errorf("availabilityWord(%v) = %q, want %q", a, got, want)
		}
	}
}

func TestParseSince(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "24h", want: testNow.Add(-24 * time.Hour)},
		{in: "90m", want: testNow.Add(-90 * time.Minute)},
		{in: "7d", want: testNow.Add(-7 * 24 * time.Hour)},
		{in: "0s", want: testNow},
		{in: "2026-02-27", want: time.Date(2026, 2, 27, 0, 0, 0, 0, time.UTC)},
		{in: "2026-02-27T08:30:00+01:00", want: time.Date(2026, 2, 27, 7, 30, 0, 0, time.UTC)},
		{in: "-1h", wantErr: true},
		{in: "yesterday", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseSince(tc.in, testNow)
		if tc.wantErr {
			if err == nil || !strings.HasPrefix(err.Error(), "--since: want a duration such as 24h or 7d") {
				t.Errorf("parseSince(%q) = %v, %v; want an error naming --since", tc.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestPlaceWords(t *testing.T) {
	p := testPlace()
	if got, want := placePath(p), "4-west/4w-402/4w-402-bed"; got != want {
		t.Errorf("placePath = %q, want %q", got, want)
	}
	if got, want := placeSummary(p), "4w-402-bed (Room 402, 4 West Medical-Surgical)"; got != want {
		t.Errorf("placeSummary = %q, want %q", got, want)
	}
	bare := &medfleetv1.Place{Zone: "z1"}
	if got, want := placePath(bare), "-/-/z1"; got != want {
		t.Errorf("placePath(zone only) = %q, want %q", got, want)
	}
	if got, want := placeSummary(bare), "z1"; got != want {
		t.Errorf("placeSummary(zone only) = %q, want %q", got, want)
	}
	if placePath(nil) != "-" || placeSummary(nil) != "-" {
		t.Errorf("placePath(nil), placeSummary(nil) = %q, %q; want -, -", placePath(nil), placeSummary(nil))
	}
	for _, tc := range []struct{ name, id, want string }{
		{"Room 402", "4w-402", "Room 402 (4w-402)"},
		{"", "4w-402", "4w-402"},
		{"spd", "spd", "spd"},
		{"", "", "-"},
		{"Bay\x1b[2J", "b1", `"Bay\x1b[2J" (b1)`},
	} {
		if got := named(tc.name, tc.id); got != tc.want {
			t.Errorf("named(%q, %q) = %q, want %q", tc.name, tc.id, got, tc.want)
		}
	}
}

func testPlace() *medfleetv1.Place {
	return &medfleetv1.Place{Site: "north", Building: "main", Floor: "main-4", Unit: "4-west", Room: "4w-402", Zone: "4w-402-bed",
		UnitName: "4 West Medical-Surgical", RoomName: "Room 402", FloorName: "Floor 4"}
}

// testLocations are a pump placed by RFID, one checked in and gone stale,
// and one never located.
func testLocations() []*medfleetv1.DeviceLocation {
	return []*medfleetv1.DeviceLocation{
		{
			Device: "devices/pump-0002", Place: testPlace(), Source: medfleetv1.LocationSource_LOCATION_SOURCE_RFID, Confidence: 0.87,
			SinceTime: ts(testNow.Add(-42 * time.Minute)), SeenTime: ts(testNow.Add(-12 * time.Second)),
			Detail: "reader sim-rfid-0023 antenna 1 (-49 dBm)", Availability: medfleetv1.Availability_AVAILABILITY_AVAILABLE,
			Profile: "infusion-pump", Model: "Alaris 8100",
		},
		{
			Device: "devices/pump-0001", Source: medfleetv1.LocationSource_LOCATION_SOURCE_MANUAL, Confidence: 1,
			Place: &medfleetv1.Place{Site: "north", Building: "main", Floor: "main-4", Unit: "4-west", Room: "4w-404", Zone: "4w-404-bed",
				UnitName: "4 West Medical-Surgical", RoomName: "Room 404", FloorName: "Floor 4"},
			SinceTime: ts(testNow.Add(-3 * time.Hour)), SeenTime: ts(testNow.Add(-3 * time.Hour)), Stale: true,
			Detail: "checked in by users/alice", Availability: medfleetv1.Availability_AVAILABILITY_AVAILABLE,
			Profile: "infusion-pump", Model: "Alaris 8100",
		},
		{Device: "devices/pump-0009", Profile: "infusion-pump", Model: "Alaris 8100"},
	}
}

func testHistory() []*medfleetv1.LocationChange {
	return []*medfleetv1.LocationChange{
		{Time: ts(testNow.Add(-42 * time.Minute)), Place: testPlace(), Source: medfleetv1.LocationSource_LOCATION_SOURCE_RFID,
			Detail: "reader sim-rfid-0023 antenna 1 (-49 dBm)"},
		{Time: ts(testNow.Add(-26 * time.Hour)), Source: medfleetv1.LocationSource_LOCATION_SOURCE_WIFI, Detail: "access point 0a:1b:2c:3d:4e:5f",
			Place: &medfleetv1.Place{Site: "north", Building: "main", Floor: "main-4", Unit: "4-west", Room: "4w-corridor", Zone: "4w-corridor-a"}},
		{Time: ts(testNow.Add(-50 * time.Hour)), Source: medfleetv1.LocationSource_LOCATION_SOURCE_MANUAL, Detail: "checked in by\nusers/bob",
			Place: &medfleetv1.Place{Site: "north", Building: "main", Floor: "main-0", Unit: "spd", Room: "spd-clean-storage", Zone: "spd-clean-a"}},
	}
}

func testParLevels() []*medfleetv1.ParStatus {
	return []*medfleetv1.ParStatus{
		{Unit: "spd", UnitName: "Sterile Processing (SPD)", Profile: "infusion-pump", Min: 10, Available: 12},
		{Unit: "4-west", UnitName: "4 West Medical-Surgical", Profile: "infusion-pump", Min: 6, Available: 2, Below: true},
		{Unit: "4-east", UnitName: "4 East Intensive Care (ICU)", Profile: "cpap", Min: 2, Available: 2},
	}
}

func TestLocationGolden(t *testing.T) {
	locs := testLocations()
	nearby := []*medfleetv1.NearbyDevice{{Location: locs[0], DistanceM: 23.94}, {Location: locs[1], DistanceM: 38.5}}
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"locate.golden", func(b *bytes.Buffer) error { return writeLocation(b, locs[0], testNow) }},
		{"locate_stale.golden", func(b *bytes.Buffer) error { return writeLocation(b, locs[1], testNow) }},
		{"locate_never.golden", func(b *bytes.Buffer) error { return writeLocation(b, locs[2], testNow) }},
		{"locate.json.golden", func(b *bytes.Buffer) error { return writeJSON(b, locs[0]) }},
		{"find.golden", func(b *bytes.Buffer) error { return writeNearbyTable(b, nearby, testNow) }},
		{"find_empty.golden", func(b *bytes.Buffer) error { return writeNearbyTable(b, nil, testNow) }},
		{"par.golden", func(b *bytes.Buffer) error { return writeParTable(b, testParLevels()) }},
		{"par_empty.golden", func(b *bytes.Buffer) error { return writeParTable(b, nil) }},
		{"location_history.golden", func(b *bytes.Buffer) error {
			return writeHistoryTable(b, testHistory(), testNow.Add(-7*24*time.Hour), testNow)
		}},
		{"location_history_empty.golden", func(b *bytes.Buffer) error { return writeHistoryTable(b, nil, time.Time{}, testNow) }},
		{"location_watch.golden", func(b *bytes.Buffer) error {
			for _, ev := range []*medfleetv1.LocationEvent{
				{Kind: medfleetv1.LocationEvent_KIND_MOVED, Time: ts(testNow.Add(-time.Minute)), Location: locs[0]},
				{Kind: medfleetv1.LocationEvent_KIND_AVAILABILITY, Time: ts(testNow.Add(-50 * time.Second)), Location: &medfleetv1.DeviceLocation{
					Device: "devices/pump-0007", Profile: "infusion-pump", Availability: medfleetv1.Availability_AVAILABILITY_SOILED}},
				{Kind: medfleetv1.LocationEvent_KIND_STALE, Time: ts(testNow.Add(-40 * time.Second)), Location: locs[1]},
				{Kind: medfleetv1.LocationEvent_KIND_PAR_BELOW, Time: ts(testNow.Add(-30 * time.Second)), Par: testParLevels()[1]},
				{Kind: medfleetv1.LocationEvent_KIND_PAR_RESTORED, Time: ts(testNow), Par: testParLevels()[2]},
			} {
				if _, err := b.WriteString(eventLine(ev) + "\n"); err != nil {
					return err
				}
			}
			return nil
		}},
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

// TestWriteJSONLine checks that each event is one line of JSON that
// decodes back to the event.
func TestWriteJSONLine(t *testing.T) {
	events := []*medfleetv1.LocationEvent{
		{Kind: medfleetv1.LocationEvent_KIND_MOVED, Time: ts(testNow), Location: testLocations()[0]},
		{Kind: medfleetv1.LocationEvent_KIND_PAR_BELOW, Time: ts(testNow), Par: testParLevels()[1]},
	}
	var b bytes.Buffer
	for _, ev := range events {
		if err := writeJSONLine(&b, ev); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(events) {
		t.Fatalf("writeJSONLine wrote %d lines for %d events:\n%s", len(lines), len(events), b.String())
	}
	for i, line := range lines {
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(line)); err != nil || compact.String() != line {
			t.Errorf("line %d is not compact JSON (%v): %q", i, err, line)
		}
		var got medfleetv1.LocationEvent
		if err := protojson.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if diff := cmp.Diff(events[i], &got, protocmp.Transform()); diff != "" {
			t.Errorf("line %d mismatch (-want +got):\n%s", i, diff)
		}
	}
}

// TestLocationUsageErrors checks that bad command lines of the location
// and facility commands exit 2 before any RPC.
func TestLocationUsageErrors(t *testing.T) {
	dir := t.TempDir()
	empty := writeTestFile(t, dir, "empty.yaml", "  \n")
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"facility without verb", []string{"facility"}, "facility: missing command, one of: apply, get"},
		{"apply without file", []string{"facility", "apply"}, "-f: required"},
		{"apply missing file", []string{"facility", "apply", "-f", dir + "/absent.yaml"}, "absent.yaml\": no such file or directory"},
		{"apply empty file", []string{"facility", "apply", "-f", empty}, "empty.yaml\": the file is empty"},
		{"apply argument", []string{"facility", "apply", "hospital.yaml"}, "facility apply: want no arguments; the document is -f FILE, got 1"},
		{"get table is yaml, not csv", []string{"facility", "get", "-o", "csv"}, `--output: want yaml or json, got "csv"`},
		{"yaml elsewhere", []string{"-o", "yaml", "par"}, `--output: must be table or json, got "yaml"`},
		{"locate nothing", []string{"locate"}, "locate: want one device id or tags/EPC, got 0"},
		{"locate bad tag", []string{"locate", "tags/xyz"}, `EPC "xyz": want 8 to 64 hex digits`},
		{"locate bad id", []string{"locate", "pump 1"}, `device id "pump 1"`},
		{"find without what", []string{"find", "--near", "4-west"}, "--profile or --model: required"},
		{"find without near", []string{"find", "--profile", "infusion-pump"}, "--near: required"},
		{"find bad status", []string{"find", "--profile", "cpap", "--near", "4-west", "--status", "clean"}, `--status: want available, in_use, soiled, in_maintenance or out_of_service, got "clean"`},
		{"find limit too high", []string{"find", "--profile", "cpap", "--near", "4-west", "--limit", "51"}, "--limit: want 1 to 50, got 51"},
		{"find negative limit", []string{"find", "--profile", "cpap", "--near", "4-west", "--limit", "-1"}, "--limit: want 1 to 50, got -1"},
		{"checkin without zone", []string{"checkin", "pump-0001"}, "checkin: want a device id or tags/EPC, and a zone, got 1"},
		{"checkin blank zone", []string{"checkin", "pump-0001", " "}, `checkin: want a zone, room or unit, got " "`},
		{"par argument", []string{"par", "4-west"}, "par: want no arguments, got 1"},
		{"location without verb", []string{"location"}, "location: missing command, one of: history, watch"},
		{"history bad since", []string{"location", "history", "pump-0001", "--since", "last week"}, `--since: want a duration such as 24h or 7d`},
		{"history two devices", []string{"location", "history", "a", "b"}, "location history: want one device id or tags/EPC, got 2"},
		{"watch negative for", []string{"location", "watch", "--for", "-1s"}, "--for: must not be negative"},
		{"tag without epc", []string{"device", "tag", "pump-0001"}, "device tag: want a device id and an EPC, got 1"},
		{"tag remove with epc", []string{"device", "tag", "pump-0001", "E2801170", "--remove"}, "device tag: want one device id with --remove, got 2"},
		{"tag bad epc", []string{"device", "tag", "pump-0001", "E280-1170"}, `EPC "E280-1170": want 8 to 64 hex digits`},
		{"tag by tag", []string{"device", "tag", "tags/E2801170", "E2801171"}, `device id "tags/E2801170"`},
		{"status without availability", []string{"device", "status", "pump-0001"}, "device status: want a device id or tags/EPC, and an availability, got 1"},
		{"status decommissioned", []string{"device", "status", "pump-0001", "decommissioned"}, `device status: availability: want available, in_use, soiled, in_maintenance or out_of_service, got "decommissioned"`},
		{"clean two devices", []string{"device", "clean", "a", "b"}, "device clean: want one device id or tags/EPC, got 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--server", unreachable}, tc.args...)
			code, stdout, stderr := runCLI(t, nil, args...)
			if code != exitUsage {
				t.Errorf("run(%q) exit code = %d, want %d (stderr %q)", args, code, exitUsage, stderr)
			}
			if !strings.HasPrefix(stderr, "medfleetctl: ") || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("run(%q) stderr = %q, want medfleetctl: ...%s...", args, stderr, tc.wantStderr)
			}
			if stdout != "" {
				t.Errorf("run(%q) stdout = %q, want nothing", args, stdout)
			}
		})
	}
}

// Tags of the test pumps.
const (
	tag1 = "E28011700000020F1A2B3C01"
	tag2 = "E28011700000020F1A2B3C02"
	tag3 = "E28011700000020F1A2B3C03"
)

// createPump registers an infusion pump.
func createPump(t *testing.T, s *testServer, id string) {
	t.Helper()
	s.mustRun(t, "device", "create", id, "--profile", "infusion-pump", "--model", "Alaris 8100")
}

// TestLocation runs the location commands against a real server with the
// sample facility: tag pumps, check them in, locate and find them, change
// their availability, and read par levels, history and the watch.
func TestLocation(t *testing.T) {
	s := startServer(t)
	applyHospital(t, s)
	for _, id := range []string{"pump-0001", "pump-0002", "pump-0003", "pump-0004"} {
		createPump(t, s, id)
	}

	// Tags: upper-cased, one device each, removable.
	if out := s.mustRun(t, "device", "tag", "pump-0001", strings.ToLower(tag1)); out != "tagged pump-0001 with "+tag1+"\n" {
		t.Errorf("device tag = %q, want tagged pump-0001 with %s", out, tag1)
	}
	code, _, stderr := s.run(t, "device", "tag", "pump-0002", tag1)
	if code != exitAlreadyExists || !strings.Contains(stderr, "tag "+tag1+" is on devices/pump-0001") {
		t.Errorf("device tag with pump-0001's tag = %d, %q; want %d naming pump-0001", code, stderr, exitAlreadyExists)
	}
	s.mustRun(t, "device", "tag", "pump-0002", tag2)
	s.mustRun(t, "device", "tag", "pump-0003", tag3)
	if out := s.mustRun(t, "device", "tag", "pump-0003", "--remove"); out != "untagged pump-0003\n" {
		t.Errorf("device tag --remove = %q, want untagged pump-0003", out)
	}
	var d medfleetv1.Device
	s.mustJSON(t, &d, "device", "tag", "pump-0003", tag3)
	if d.GetRfidTag() != tag3 || d.GetName() != "devices/pump-0003" {
		t.Errorf("device tag -o json = %s %q, want devices/pump-0003 %q", d.GetName(), d.GetRfidTag(), tag3)
	}

	// Never located yet.
	out := s.mustRun(t, "locate", "pump-0004")
	if keyValue(t, out, "place") != "unknown: never located" || keyValue(t, out, "availability") != "unknown" {
		t.Errorf("locate of a device never located:\n%s", out)
	}
	code, _, stderr = s.run(t, "locate", "tags/0123456789ABCDEF")
	if code != exitNotFound || !strings.Contains(stderr, "no device carries tag 0123456789ABCDEF") {
		t.Errorf("locate of an unknown tag = %d, %q; want %d", code, stderr, exitNotFound)
	}

	// Check-ins: to a room (its first zone), by tag, to a zone.
	if out := s.mustRun(t, "checkin", "pump-0001", "4w-404"); out != "checked in pump-0001 at 4w-404-bed (Room 404, 4 West Medical-Surgical)\n" {
		t.Errorf("checkin = %q", out)
	}
	s.mustRun(t, "checkin", "tags/"+tag2, "4w-402")
	s.mustRun(t, "checkin", "pump-0003", "4e-411-bed")
	code, _, stderr = s.run(t, "checkin", "pump-0004", "5-north")
	if code != exitInvalidArgument || !strings.Contains(stderr, `"5-north" is not a zone, room or unit`) {
		t.Errorf("checkin to an unknown zone = %d, %q; want %d", code, stderr, exitInvalidArgument)
	}

	// locate shows the room, by id and by tag.
	for _, ref := range []string{"pump-0001", "devices/pump-0001", "tags/" + strings.ToLower(tag1)} {
		out := s.mustRun(t, "locate", ref)
		for key, want := range map[string]string{
			"device": "pump-0001", "profile": "infusion-pump", "model": "Alaris 8100", "floor": "Floor 4 (main-4)",
			"unit": "4 West Medical-Surgical (4-west)", "room": "Room 404 (4w-404)", "zone": "4w-404-bed", "confidence": "100%",
		} {
			if got := keyValue(t, out, key); got != want {
				t.Errorf("locate %s: %s %q, want %q", ref, key, got, want)
			}
		}
		if src := keyValue(t, out, "source"); !strings.HasPrefix(src, "manual: checked in by users/") {
			t.Errorf("locate %s: source %q, want manual: checked in by users/...", ref, src)
		}
		if seen := keyValue(t, out, "last seen"); !strings.HasSuffix(seen, "s ago") || strings.Contains(seen, "STALE") {
			t.Errorf("locate %s: last seen %q, want a few seconds ago, not stale", ref, seen)
		}
	}
	var loc medfleetv1.DeviceLocation
	s.mustJSON(t, &loc, "locate", "tags/"+tag2)
	if loc.GetDevice() != "devices/pump-0002" || loc.GetPlace().GetZone() != "4w-402-bed" || loc.GetSource() != medfleetv1.LocationSource_LOCATION_SOURCE_MANUAL {
		t.Errorf("locate -o json tags/%s = %v, want pump-0002 checked in at 4w-402-bed", tag2, &loc)
	}

	// Nothing is available before anyone says so.
	if out := s.mustRun(t, "find", "--profile", "infusion-pump", "--near", "4-west"); out != "0 devices\n" {
		t.Errorf("find before any is available = %q, want 0 devices", out)
	}
	for _, id := range []string{"pump-0001", "pump-0002", "pump-0003"} {
		if out := s.mustRun(t, "device", "status", id, "available"); out != id+" is available\n" {
			t.Errorf("device status %s available = %q", id, out)
		}
	}

	// find from the unit: nearest first, 402 off the first corridor, 404
	// at its end, then across the floor to 4 East.
	out = s.mustRun(t, "find", "--profile", "infusion-pump", "--near", "4-west")
	if got, want := column(out, "DEVICE"), []string{"pump-0002", "pump-0001", "pump-0003"}; !cmp.Equal(got, want) {
		t.Errorf("find --near 4-west devices = %q, want %q; output:\n%s", got, want, out)
	}
	if got, want := column(out, "ROOM"), []string{"4w-402", "4w-404", "4e-411"}; !cmp.Equal(got, want) {
		t.Errorf("find --near 4-west rooms = %q, want %q", got, want)
	}
	var near medfleetv1.FindNearestResponse
	s.mustJSON(t, &near, "find", "--model", "Alaris 8100", "--near", "4w-401-bed", "--limit", "2")
	if n := len(near.GetDevices()); n != 2 {
		t.Fatalf("find --limit 2 -o json: %d devices, want 2", n)
	}
	if a, b := near.GetDevices()[0].GetDistanceM(), near.GetDevices()[1].GetDistanceM(); !(0 < a && a < b) {
		t.Errorf("find -o json distances %v, %v; want increasing", a, b)
	}
	code, _, stderr = s.run(t, "find", "--profile", "infusion-pump", "--near", "5-north")
	if code != exitInvalidArgument || !strings.Contains(stderr, "near: ") {
		t.Errorf("find --near an unknown place = %d, %q; want %d naming near", code, stderr, exitInvalidArgument)
	}

	// soiled, found by the cleaning round, and cleaned.
	s.mustRun(t, "device", "status", "pump-0002", "soiled", "--reason", "off patient in 402")
	out = s.mustRun(t, "find", "--profile", "infusion-pump", "--near", "4-west", "--status", "soiled")
	if got := column(out, "DEVICE"); !cmp.Equal(got, []string{"pump-0002"}) {
		t.Errorf("find --status soiled = %q, want pump-0002 only; output:\n%s", got, out)
	}
	if out := s.mustRun(t, "device", "clean", "tags/"+tag2); out != "pump-0002 is available\n" {
		t.Errorf("device clean = %q, want pump-0002 is available", out)
	}

	// par: 4 West holds two available pumps of six.
	out = s.mustRun(t, "par", "--unit", "4-west")
	if !strings.Contains(out, "4-west  4 West Medical-Surgical  infusion-pump  2          6    BELOW\n") ||
		!strings.HasSuffix(out, "1 par level, 1 below\n") {
		t.Errorf("par --unit 4-west:\n%s\nwant 4-west infusion-pump 2 of 6, BELOW", out)
	}
	var par medfleetv1.ListParLevelsResponse
	s.mustJSON(t, &par, "par", "--below")
	units := map[string]int32{}
	for _, p := range par.GetLevels() {
		if !p.GetBelow() {
			t.Errorf("par --below lists %s %s, not below", p.GetUnit(), p.GetProfile())
		}
		if p.GetProfile() == "infusion-pump" {
			units[p.GetUnit()] = p.GetAvailable()
		}
	}
	if got, ok := units["4-west"]; !ok || got != 2 {
		t.Errorf("par --below -o json: 4-west infusion pumps %d (listed %v), want 2", got, ok)
	}
	if got, ok := units["4-east"]; !ok || got != 1 {
		t.Errorf("par --below -o json: 4-east infusion pumps %d (listed %v), want 1", got, ok)
	}

	// The lifecycle: available -> in_maintenance -> out_of_service, and
	// from there not back to available.
	s.mustRun(t, "device", "status", "pump-0003", "in_maintenance")
	s.mustRun(t, "device", "status", "pump-0003", "out-of-service", "--reason", "cracked housing")
	code, stdout, stderr := s.run(t, "device", "status", "pump-0003", "available")
	if code != exitFailedPrecondition || stdout != "" ||
		!strings.HasPrefix(stderr, "medfleetctl: failed precondition: ") ||
		!strings.Contains(stderr, "devices/pump-0003 is out_of_service; from there it can become in_maintenance") {
		t.Errorf("device status out_of_service -> available = %d, %q, %q; want %d and the lifecycle's refusal", code, stdout, stderr, exitFailedPrecondition)
	}
	var after medfleetv1.DeviceLocation
	s.mustJSON(t, &after, "device", "status", "pump-0003", "in_maintenance")
	if after.GetAvailability() != medfleetv1.Availability_AVAILABILITY_IN_MAINTENANCE || after.GetPlace().GetZone() != "4e-411-bed" {
		t.Errorf("device status -o json = %v, want in_maintenance at 4e-411-bed", &after)
	}

	// History: the check-in, newest first.
	s.mustRun(t, "checkin", "pump-0001", "4w-soiled")
	out = s.mustRun(t, "location", "history", "pump-0001", "--since", "1h")
	if got := column(out, "ZONE"); !cmp.Equal(got, []string{"4w-soiled", "4w-404-bed"}) {
		t.Errorf("location history zones = %q, want 4w-soiled, then 4w-404-bed; output:\n%s", got, out)
	}
	if !strings.Contains(out, "manual  checked in by users/") || !strings.Contains(out, "\n2 moves since ") {
		t.Errorf("location history lacks the check-in or the count:\n%s", out)
	}
	var hist medfleetv1.ListLocationHistoryResponse
	s.mustJSON(t, &hist, "location", "history", "tags/"+tag1)
	if n := len(hist.GetChanges()); n != 2 {
		t.Errorf("location history -o json: %d changes, want 2", n)
	}
	if out := s.mustRun(t, "location", "history", "pump-0004"); out != "0 moves\n" {
		t.Errorf("location history of a device never located = %q, want 0 moves", out)
	}
	if out := s.mustRun(t, "location", "history", "pump-0001", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); !strings.HasPrefix(out, "0 moves since ") {
		t.Errorf("location history --since the future = %q, want 0 moves", out)
	}
}

// TestLocationWatch watches 4 West while pumps are checked in there and
// elsewhere: the watch prints the moves into the unit, as lines, and ends
// at --for with exit code 0.
func TestLocationWatch(t *testing.T) {
	s := startServer(t)
	applyHospital(t, s)
	createPump(t, s, "pump-0001")
	createPump(t, s, "pump-0002")

	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		code, stdout, stderr := s.run(t, "location", "watch", "--unit", "4-west", "--for", "2s")
		done <- result{code, stdout, stderr}
	}()
	// The watch may not have reached the server yet: move the pumps to and
	// fro until it ends. pump-0002 moves in 4 East, which the watch does
	// not see.
	west, east := []string{"4w-402-bed", "4w-403-bed"}, []string{"4e-411", "4e-412"}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(20 * time.Second)
	var r result
	for i := 0; ; i++ {
		select {
		case r = <-done:
		case <-tick.C:
			s.mustRun(t, "checkin", "pump-0001", west[i%2])
			s.mustRun(t, "checkin", "pump-0002", east[i%2])
			continue
		case <-timeout:
			t.Fatal("location watch --for 2s still running after 20s")
		}
		break
	}
	if d := time.Since(start); d < 2*time.Second || d > 10*time.Second {
		t.Errorf("location watch --for 2s took %v", d)
	}
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("location watch = %d, %q; want 0 and nothing on stderr", r.code, r.stderr)
	}
	moves := 0
	for line := range strings.Lines(r.stdout) {
		f := strings.Fields(line)
		if len(f) < 5 {
			t.Errorf("watch line %q: too short", line)
			continue
		}
		if _, err := time.Parse(time.RFC3339, f[0]); err != nil {
			t.Errorf("watch line %q does not start with a time: %v", line, err)
		}
		if f[2] == "pump-0002" {
			t.Errorf("watch --unit 4-west printed a move in 4 East: %q", line)
		}
		if len(f) > 6 && f[1] == "moved" && f[2] == "pump-0001" && strings.HasPrefix(f[5], "4-west/4w-40") && strings.Contains(line, "manual: checked in by users/") {
			moves++
		}
	}
	if moves == 0 {
		t.Errorf("location watch printed no move of pump-0001:\n%s", r.stdout)
	}
}

// column returns the cells of a table's column, named by its header, from
// the rows between the header and the count line. tabwriter starts every
// cell of a column where its header starts, and cells hold no double
// space.
func column(table, header string) []string {
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) < 2 {
		return nil
	}
	at := strings.Index(lines[0], header)
	if at < 0 {
		return nil
	}
	var out []string
	for _, row := range lines[1 : len(lines)-1] {
		if len(row) <= at {
			out = append(out, "")
			continue
		}
		c, _, _ := strings.Cut(row[at:], "  ")
		out = append(out, c)
	}
	return out
}
