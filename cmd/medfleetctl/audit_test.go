package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// mutate makes n audited changes: devices created with the CLI.
func mutate(t *testing.T, s *testServer, n int) {
	t.Helper()
	for i := range n {
		s.mustRun(t, "device", "create", fmt.Sprintf("pump-%04d", i), "--profile", "infusion-pump", "--model", "Alaris 8100")
	}
}

func TestAuditList(t *testing.T) {
	s := startServer(t)
	if out := s.mustRun(t, "audit", "list"); out != "0 records\n" {
		t.Errorf("audit list of a fresh log = %q, want 0 records", out)
	}
	mutate(t, s, 3)
	s.mustRun(t, "user", "create", "alice", "--role", "biomed")
	// A refused mutation is audited too.
	if code, _, _ := s.run(t, "device", "create", "pump-0000", "--profile", "infusion-pump", "--model", "Alaris 8100"); code != exitAlreadyExists {
		t.Fatalf("device create pump-0000 again = %d, want %d", code, exitAlreadyExists)
	}

	out := s.mustRun(t, "audit", "list")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 7 || lines[6] != "5 records" {
		t.Fatalf("audit list =\n%s\nwant a header, 5 records and a count", out)
	}
	if h := strings.Fields(lines[0]); strings.Join(h, " ") != "SEQ TIME ACTOR ROLE ACTION TARGET OUTCOME SOURCE" {
		t.Errorf("audit list header = %q", lines[0])
	}
	wantRows := [][]string{
		{"1", "users/admin", "admin", "CreateDevice", "devices/pump-0000", "OK"},
		{"2", "users/admin", "admin", "CreateDevice", "devices/pump-0001", "OK"},
		{"3", "users/admin", "admin", "CreateDevice", "devices/pump-0002", "OK"},
		{"4", "users/admin", "admin", "CreateUser", "users/alice", "OK"},
		{"5", "users/admin", "admin", "CreateDevice", "devices/pump-0000", "AlreadyExists"},
	}
	for i, want := range wantRows {
		f := strings.Fields(lines[i+1])
		if len(f) != 8 {
			t.Errorf("audit list row %q: %d columns, want 8", lines[i+1], len(f))
			continue
		}
		got := []string{f[0], f[2], f[3], f[4], f[5], f[6]}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("audit list row %d = %q, want %q", i+1, got, want)
		}
		if _, err := time.Parse(time.RFC3339, f[1]); err != nil {
			t.Errorf("audit list row %d time %q: %v", i+1, f[1], err)
		}
		if !strings.HasPrefix(f[7], "127.0.0.1:") {
			t.Errorf("audit list row %d source %q, want the loopback peer", i+1, f[7])
		}
	}

	var resp medfleetv1.ListAuditRecordsResponse
	s.mustJSON(t, &resp, "audit", "list", "--filter", `outcome != "OK"`)
	if len(resp.GetRecords()) != 1 || resp.GetRecords()[0].GetSequence() != 5 ||
		resp.GetRecords()[0].GetAction() != "/medfleet.v1.DeviceService/CreateDevice" || resp.GetHeadSequence() != 5 {
		t.Errorf("audit list --filter 'outcome != \"OK\"' -o json = %v, want record 5 with the full action, head 5", &resp)
	}

	// --limit stops early and says how to continue; --start continues.
	out = s.mustRun(t, "audit", "list", "--limit", "2")
	if !strings.HasSuffix(out, "\n2 records, more: --start 2\n") {
		t.Errorf("audit list --limit 2 =\n%s\nwant 2 records and --start 2", out)
	}
	resp.Reset()
	s.mustJSON(t, &resp, "audit", "list", "--start", "2", "--limit", "2")
	if got := sequences(resp.GetRecords()); got != "3 4" {
		t.Errorf("audit list --start 2 --limit 2 = records %s, want 3 4", got)
	}
	resp.Reset()
	s.mustJSON(t, &resp, "audit", "list", "--start", "3", "--limit", "0")
	if got := sequences(resp.GetRecords()); got != "4 5" || resp.GetNextPageToken() != "" {
		t.Errorf("audit list --start 3 --limit 0 = records %s, token %q; want 4 5, none", got, resp.GetNextPageToken())
	}

	if code, _, stderr := s.run(t, "audit", "list", "--filter", "colour = blue"); code != exitInvalidArgument {
		t.Errorf("audit list with a bad filter = %d (%s), want %d", code, stderr, exitInvalidArgument)
	}
}

func sequences(records []*medfleetv1.AuditRecord) string {
	var s []string
	for _, r := range records {
		s = append(s, fmt.Sprint(r.GetSequence()))
	}
	return strings.Join(s, " ")
}

func TestAuditVerify(t *testing.T) {
	s := startServer(t)
	if out := s.mustRun(t, "audit", "verify"); out != "audit log verified: 0 records, head 0\n" {
		t.Errorf("audit verify of a fresh log = %q", out)
	}

	mutate(t, s, 4)
	var list medfleetv1.ListAuditRecordsResponse
	s.mustJSON(t, &list, "audit", "list")
	head := hex.EncodeToString(list.GetHeadHash())
	if want := "audit log verified: 4 records, head 4 " + head[:16] + "\n"; s.mustRun(t, "audit", "verify") != want {
		t.Errorf("audit verify = %q, want %q", s.mustRun(t, "audit", "verify"), want)
	}
	var res auditVerification
	if err := json.Unmarshal([]byte(s.mustRun(t, "-o", "json", "audit", "verify")), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Verified || res.Records != 4 || res.HeadSequence != 4 || res.HeadHash != head {
		t.Errorf("audit verify -o json = %+v, want verified, 4 records, head 4 %s", res, head)
	}

	// Rewrite who made record 2, directly in etcd.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.cfg.Etcd.ListenClient}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	key := fmt.Sprintf("/medfleet/v1/audit/records/%020d", 2)
	got, err := cli.Get(t.Context(), key)
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("get %s: %v, %d keys", key, err, len(got.Kvs))
	}
	var rec medfleetv1.AuditRecord
	if err := proto.Unmarshal(got.Kvs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	rec.Actor = "users/somebody-else"
	b, err := proto.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(t.Context(), key, string(b)); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := s.run(t, "audit", "verify")
	if code != exitError {
		t.Errorf("audit verify of a tampered log = %d, want %d", code, exitError)
	}
	if stdout != "" {
		t.Errorf("audit verify of a tampered log printed %q on stdout", stdout)
	}
	if want := "medfleetctl: audit log broken at record 2: hash does not match its contents (record 1 verified)\n"; stderr != want {
		t.Errorf("audit verify stderr = %q, want %q", stderr, want)
	}

	code, stdout, _ = s.run(t, "-o", "json", "audit", "verify")
	res = auditVerification{}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != exitError {
		t.Fatalf("audit verify -o json of a tampered log = %d, %q (%v)", code, stdout, err)
	}
	if res.Verified || res.BrokenSequence != 2 || res.Records != 1 || !strings.Contains(res.Reason, "hash") {
		t.Errorf("audit verify -o json of a tampered log = %+v, want not verified, broken at 2", res)
	}
}
