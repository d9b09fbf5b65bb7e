package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestParseRole(t *testing.T) {
	tests := []struct {
		in      string
		want    medfleetv1.Role
		wantErr bool
	}{
		{in: "admin", want: medfleetv1.Role_ROLE_ADMIN},
		{in: "biomed", want: medfleetv1.Role_ROLE_BIOMED},
		{in: "Facility", want: medfleetv1.Role_ROLE_FACILITY},
		{in: "ROLE_AUTOMATION", want: medfleetv1.Role_ROLE_AUTOMATION},
		{in: "unspecified", wantErr: true},
		{in: "ROLE_UNSPECIFIED", wantErr: true},
		{in: "", wantErr: true},
		{in: "nurse", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseRole(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseRole(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	// What the tables print, --role accepts.
	for _, name := range roleNames() {
		r, err := parseRole(name)
		if err != nil || roleWord(r) != name {
			t.Errorf("parseRole(%q) = %v, %v; roleWord of it %q", name, r, err, roleWord(r))
		}
	}
	if got, want := strings.Join(roleNames(), ","), "admin,biomed,facility,automation"; got != want {
		t.Errorf("roleNames() = %s, want %s", got, want)
	}
}

func TestParseUserID(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "alice", want: "alice"},
		{in: "users/alice", want: "alice"},
		{in: "rollout-bot.ci_1", want: "rollout-bot.ci_1"},
		{in: strings.Repeat("a", 64), want: strings.Repeat("a", 64)},
		{in: strings.Repeat("a", 65), wantErr: true},
		{in: "Alice", wantErr: true},
		{in: "", wantErr: true},
		{in: "users/", wantErr: true},
		{in: "-alice", wantErr: true},
		{in: "users/alice/tokens/x", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseUserID(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseUserID(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseDays(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "90d", want: 90 * 24 * time.Hour},
		{in: "0d", want: 0},
		{in: "720h", want: 720 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "0", want: 0},
		{in: "-1h", wantErr: true},
		{in: "-1d", wantErr: true},
		{in: "1.5d", wantErr: true},
		{in: "d", wantErr: true},
		{in: "soon", wantErr: true},
		{in: "99999999d", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseDays(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseDays(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	for _, d := range []daysFlag{daysFlag(90 * 24 * time.Hour), daysFlag(time.Hour), 0} {
		var back daysFlag
		if err := back.Set(d.String()); err != nil || back != d {
			t.Errorf("Set(%q) = %v, %v; want %v", d.String(), time.Duration(back), err, time.Duration(d))
		}
	}
}

// TestUsers creates, reads, lists and deletes users on a real server.
func TestUsers(t *testing.T) {
	s := startServer(t)

	out := s.mustRun(t, "user", "create", "alice", "--role", "biomed", "--site", "north", "--description", "Alice Meyer, ext. 4711")
	for _, want := range []string{"name:        users/alice\n", "role:        biomed\n", "site:        north\n", "description: Alice Meyer, ext. 4711\n", "creator:     users/admin\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("user create alice printed\n%s\nwant a line %q", out, want)
		}
	}
	var bot medfleetv1.User
	s.mustJSON(t, &bot, "user", "create", "users/rollout-bot", "--role", "automation")
	if bot.GetName() != "users/rollout-bot" || bot.GetRole() != medfleetv1.Role_ROLE_AUTOMATION || bot.GetSite() != "" {
		t.Errorf("user create rollout-bot -o json = %v", &bot)
	}

	var got medfleetv1.User
	s.mustJSON(t, &got, "user", "get", "alice")
	want := &medfleetv1.User{Name: "users/alice", Role: medfleetv1.Role_ROLE_BIOMED, Site: "north", Description: "Alice Meyer, ext. 4711", Creator: "users/admin"}
	if diff := cmp.Diff(want, &got, protocmp.Transform(), protocmp.IgnoreFields(&medfleetv1.User{}, "create_time", "etag")); diff != "" {
		t.Errorf("user get alice mismatch (-want +got):\n%s", diff)
	}

	var list medfleetv1.ListUsersResponse
	s.mustJSON(t, &list, "user", "list")
	if names := userNames(list.GetUsers()); !cmp.Equal(names, []string{"users/admin", "users/alice", "users/rollout-bot"}) {
		t.Errorf("user list -o json = %v, want admin, alice and rollout-bot", names)
	}
	table := s.mustRun(t, "user", "list")
	if !strings.HasPrefix(table, "USER ") || !strings.Contains(table, "\nalice ") || !strings.HasSuffix(table, "\n3 users\n") {
		t.Errorf("user list =\n%s\nwant a table of 3 users", table)
	}

	if code, _, stderr := s.run(t, "user", "create", "alice", "--role", "admin"); code != exitAlreadyExists {
		t.Errorf("user create alice again = %d (%s), want %d", code, stderr, exitAlreadyExists)
	}
	if code, _, stderr := s.run(t, "user", "create", "carol", "--role", "biomed", "--site", "North Wing"); code != exitInvalidArgument {
		t.Errorf("user create with a bad site = %d (%s), want %d", code, stderr, exitInvalidArgument)
	}

	if out := s.mustRun(t, "user", "delete", "rollout-bot"); out != "deleted users/rollout-bot\n" {
		t.Errorf("user delete rollout-bot = %q", out)
	}
	if out := s.mustRun(t, "user", "delete", "alice", "-o", "json"); out != "{}\n" {
		t.Errorf("user delete alice -o json = %q, want {}", out)
	}
	if code, _, stderr := s.run(t, "user", "get", "alice"); code != exitNotFound {
		t.Errorf("user get after delete = %d (%s), want %d", code, stderr, exitNotFound)
	}
	if code, _, stderr := s.run(t, "user", "delete", "admin"); code != exitFailedPrecondition || !strings.Contains(stderr, "cannot delete themselves") {
		t.Errorf("user delete admin as admin = %d, %q; want %d", code, stderr, exitFailedPrecondition)
	}
}

func userNames(users []*medfleetv1.User) []string {
	var names []string
	for _, u := range users {
		names = append(names, u.GetName())
	}
	return names
}

// TestTokens creates a token, uses it, lists it and revokes it.
func TestTokens(t *testing.T) {
	s := startServer(t)
	s.mustRun(t, "user", "create", "alice", "--role", "biomed", "--site", "north")

	code, stdout, stderr := s.run(t, "token", "create", "alice", "--ttl", "8h", "--description", "laptop")
	if code != exitOK {
		t.Fatalf("token create = %d, stderr %q", code, stderr)
	}
	// The secret alone on stdout, for $(medfleetctl token create ...).
	secret := strings.TrimSuffix(stdout, "\n")
	if !strings.HasPrefix(secret, "mft_") || strings.ContainsAny(secret, " \n") {
		t.Fatalf("token create stdout = %q, want the token alone on one line", stdout)
	}
	if !strings.HasPrefix(stderr, "medfleetctl: token users/alice/tokens/") || !strings.Contains(stderr, "shown only now") ||
		strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, secret) {
		t.Errorf("token create stderr = %q, want one line of warning without the secret", stderr)
	}

	alice := map[string]string{envTokenFile: "", envToken: secret}
	caller := whoami(t, s, alice)
	want := &medfleetv1.Caller{User: "users/alice", Role: medfleetv1.Role_ROLE_BIOMED, Site: "north", AuthenticatedBy: "token"}
	if diff := cmp.Diff(want, caller, protocmp.Transform()); diff != "" {
		t.Errorf("whoami with the new token mismatch (-want +got):\n%s", diff)
	}

	var resp medfleetv1.CreateTokenResponse
	s.mustJSON(t, &resp, "token", "create", "alice", "--ttl", "0")
	if !strings.HasPrefix(resp.GetSecret(), "mft_") || resp.GetToken().GetExpireTime() != nil {
		t.Errorf("token create --ttl 0 -o json = %v, want a secret and no expiry", &resp)
	}

	var list medfleetv1.ListTokensResponse
	s.mustJSON(t, &list, "token", "list", "alice")
	if len(list.GetTokens()) != 2 {
		t.Fatalf("token list alice = %v, want 2 tokens", list.GetTokens())
	}
	var first *medfleetv1.Token
	for _, tok := range list.GetTokens() {
		if tok.GetDescription() == "laptop" {
			first = tok
		}
	}
	if first == nil {
		t.Fatalf("token list alice = %v, no token described as laptop", list.GetTokens())
	}
	if d := first.GetExpireTime().AsTime().Sub(first.GetCreateTime().AsTime()); d != 8*time.Hour {
		t.Errorf("token created with --ttl 8h lives %v", d)
	}
	_, id := tokenParts(first.GetName())
	if !strings.HasPrefix(secret, "mft_"+id+"_") {
		t.Errorf("token id %q is not the public half of the secret", id)
	}

	var all medfleetv1.ListTokensResponse
	s.mustJSON(t, &all, "token", "list")
	if len(all.GetTokens()) != 3 { // admin's and alice's two
		t.Errorf("token list = %d tokens, want 3", len(all.GetTokens()))
	}
	table := s.mustRun(t, "token", "list")
	if !strings.Contains(table, "alice  "+id+"  -  ") || !strings.HasSuffix(table, "\n3 tokens\n") || strings.Contains(table, "mft_") {
		t.Errorf("token list =\n%s\nwant a row for alice's token %s, a count, and no secrets", table, id)
	}

	if out := s.mustRun(t, "token", "delete", "alice", id); out != "deleted users/alice/tokens/"+id+"\n" {
		t.Errorf("token delete = %q", out)
	}
	if code, _, stderr := s.runEnv(t, alice, "whoami"); code != exitPermission {
		t.Errorf("whoami with a deleted token = %d (%s), want %d", code, stderr, exitPermission)
	}
	if code, _, _ := s.run(t, "token", "delete", "alice", id); code != exitNotFound {
		t.Errorf("token delete of a deleted token = %d, want %d", code, exitNotFound)
	}
}

// TestUserCert issues a client certificate for a user, whose key is made
// locally, and authenticates with it.
func TestUserCert(t *testing.T) {
	s := startServer(t)
	s.mustRun(t, "user", "create", "alice", "--role", "facility")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "alice")

	out := s.mustRun(t, "user", "cert", "alice", "--out", prefix, "--validity", "30d")
	if !strings.Contains(out, "certificate: "+prefix+".crt\n") || !strings.Contains(out, "private key: "+prefix+".key\n") {
		t.Errorf("user cert printed\n%s\nwant the paths of both files", out)
	}
	checkMode(t, prefix+".crt", 0o644)
	checkMode(t, prefix+".key", 0o600)
	certPEM, err := os.ReadFile(prefix + ".crt")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s.crt: %v", prefix, err)
	}
	if cert.Subject.CommonName != "alice" {
		t.Errorf("certificate names %q, want alice", cert.Subject.CommonName)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("certificate valid for %v, want 30 days", d)
	}

	caller := whoami(t, s, map[string]string{envTokenFile: ""}, "--cert", prefix+".crt", "--key", prefix+".key")
	want := &medfleetv1.Caller{User: "users/alice", Role: medfleetv1.Role_ROLE_FACILITY, AuthenticatedBy: "certificate"}
	if diff := cmp.Diff(want, caller, protocmp.Transform()); diff != "" {
		t.Errorf("whoami with the certificate mismatch (-want +got):\n%s", diff)
	}
	// From the environment, and preferred to the admin token there.
	caller = whoami(t, s, map[string]string{envCertFile: prefix + ".crt", envKeyFile: prefix + ".key"})
	if caller.GetUser() != "users/alice" || caller.GetAuthenticatedBy() != "certificate" {
		t.Errorf("whoami with MEDFLEET_CERT_FILE = %v, want alice by certificate", caller)
	}

	// The files are not replaced without --force, and nothing is signed.
	code, _, stderr := s.run(t, "user", "cert", "alice", "--out", prefix)
	if code != exitUsage || !strings.Contains(stderr, `--out "`+prefix+`.crt": the file exists; --force replaces it`) {
		t.Errorf("user cert over existing files = %d, %q; want %d and a hint to --force", code, stderr, exitUsage)
	}
	if b, _ := os.ReadFile(prefix + ".crt"); string(b) != string(certPEM) {
		t.Error("user cert without --force changed the certificate")
	}
	var files userCertFiles
	out = s.mustRun(t, "-o", "json", "user", "cert", "alice", "--out", prefix, "--force")
	if err := json.Unmarshal([]byte(out), &files); err != nil || files.Certificate != prefix+".crt" || files.PrivateKey != prefix+".key" || files.ExpireTime.IsZero() {
		t.Errorf("user cert -o json = %q (%v), want both paths and the expiry", out, err)
	}
	if b, _ := os.ReadFile(prefix + ".crt"); string(b) == string(certPEM) {
		t.Error("user cert --force did not replace the certificate")
	}
	checkMode(t, prefix+".key", 0o600)
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%s holds %d files, want 2 (no temporary files left)", dir, len(entries))
	}

	// A deleted user's certificate is refused.
	s.mustRun(t, "user", "delete", "alice")
	code, _, stderr = s.runEnv(t, map[string]string{envTokenFile: ""}, "--cert", prefix+".crt", "--key", prefix+".key", "whoami")
	if code != exitPermission || !strings.Contains(stderr, "  the server refused the client certificate --cert") {
		t.Errorf("whoami with a deleted user's certificate = %d, %q; want %d and a hint", code, stderr, exitPermission)
	}

	// No file is left behind when the call fails.
	code, _, _ = s.run(t, "user", "cert", "nobody", "--out", filepath.Join(dir, "nobody"))
	if code != exitNotFound {
		t.Errorf("user cert nobody = %d, want %d", code, exitNotFound)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%s holds %d files after a failed user cert, want 2", dir, len(entries))
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}
