package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medfleet/medfleet/agent"
	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// runAgent runs a real device agent with cfg (server, device id and the
// device's description filled in) against the test server's DTLS listener
// until the server has its registration.
func runAgent(t *testing.T, s *testServer, id string, cfg agent.Config) {
	t.Helper()
	cfg.Server = s.srv.Addrs().CoAPDTLS.String()
	cfg.DeviceID = id
	cfg.Profile, cfg.Model, cfg.Firmware = "infusion-pump", "Alaris 8100", "9.33.1"
	cfg.NoSync = true
	a, err := agent.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := s.srv.Inventory().Get(id)
		if err == nil && d.GetStatus().GetRegistrationTime() != nil {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("agent %s stopped before registering: %v", id, err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s not registered after 20s", id)
		}
	}
}

// credentialGeneration returns the generation of a device's credential.
func credentialGeneration(t *testing.T, s *testServer, id string) uint64 {
	t.Helper()
	var c medfleetv1.DeviceCredential
	s.mustJSON(t, &c, "device", "credential", "get", id)
	return c.GetGeneration()
}

// TestEnrollCredentialsFile issues a credential of each kind into a
// credentials file and has the real agent use the file.
func TestEnrollCredentialsFile(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		kind     string
		wantKeys []string
	}{
		{kindPSK, []string{"ca", "device", "kind", "psk"}},
		{kindCert, []string{"ca", "certificate", "device", "kind", "private_key"}},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			id := "pump-" + tc.kind
			path := filepath.Join(t.TempDir(), id+".json")
			out := s.mustRun(t, "device", "enroll", id, "--kind", tc.kind, "--out", path)
			if want := "wrote the " + tc.kind + " credential of devices/" + id + " (generation 1) to " + path + "\n"; out != want {
				t.Errorf("device enroll --kind %s = %q, want %q", tc.kind, out, want)
			}
			checkMode(t, path, 0o600)

			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var fields map[string]any
			if err := json.Unmarshal(raw, &fields); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if keys := slices.Sorted(maps.Keys(fields)); !slices.Equal(keys, tc.wantKeys) {
				t.Errorf("%s has fields %v, want %v", path, keys, tc.wantKeys)
			}

			creds, err := agent.ReadCredentials(path)
			if err != nil {
				t.Fatalf("agent.ReadCredentials: %v", err)
			}
			if creds.Device != id || creds.Kind != tc.kind || creds.CA == "" {
				t.Errorf("agent.ReadCredentials = device %q, kind %q, CA %d bytes; want %s, %s, a CA", creds.Device, creds.Kind, len(creds.CA), id, tc.kind)
			}
			if tc.kind == kindPSK && len(creds.PSK) < 16 {
				t.Errorf("psk of %d bytes, want at least 16", len(creds.PSK))
			}
			// Byte for byte what the agent writes itself.
			again := filepath.Join(t.TempDir(), "again.json")
			if err := agent.WriteCredentials(again, creds, false); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(again); !bytes.Equal(b, raw) {
				t.Errorf("medfleetctl wrote\n%s\nthe agent writes\n%s", raw, b)
			}

			runAgent(t, s, id, agent.Config{CredentialsFile: path})
		})
	}
}

// TestEnrollFiles checks that an existing credentials file is kept, and
// the device's credential with it, unless --force.
func TestEnrollFiles(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "pump-1.json")
	s.mustRun(t, "device", "enroll", "pump-1", "--kind", "psk", "--out", path)
	first, _ := os.ReadFile(path)

	code, stdout, stderr := s.run(t, "device", "enroll", "pump-1", "--kind", "psk", "--out", path)
	if code != exitUsage || !strings.Contains(stderr, `--out "`+path+`": the file exists; --force replaces it`) || stdout != "" {
		t.Errorf("device enroll over an existing file = %d, %q, %q; want %d and a hint to --force", code, stdout, stderr, exitUsage)
	}
	if g := credentialGeneration(t, s, "pump-1"); g != 1 {
		t.Errorf("credential generation %d after a refused enroll, want 1: the old credential was replaced", g)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, first) {
		t.Error("the refused enroll changed the file")
	}

	// --force replaces the file, with mode 0600 whatever the old one had.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var cred medfleetv1.DeviceCredential
	s.mustJSON(t, &cred, "device", "enroll", "pump-1", "--kind", "cert", "--out", path, "--force")
	if cred.GetGeneration() != 2 || cred.GetKind() != medfleetv1.CredentialKind_CREDENTIAL_KIND_CERTIFICATE || cred.GetCertificateSerial() == "" {
		t.Errorf("device enroll --kind cert -o json = %v, want generation 2 of a certificate", &cred)
	}
	checkMode(t, path, 0o600)
	if c, err := agent.ReadCredentials(path); err != nil || c.Kind != kindCert {
		t.Errorf("after --force the file holds %v, %v; want the certificate", c, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%s holds %d files, want 1 (no temporary files left)", dir, len(entries))
	}

	// A failed call leaves no file behind: a decommissioned device.
	s.mustRun(t, "device", "create", "pump-2", "--profile", "infusion-pump", "--model", "Alaris 8100")
	s.mustRun(t, "device", "delete", "pump-2")
	other := filepath.Join(dir, "pump-2.json")
	if code, _, stderr := s.run(t, "device", "enroll", "pump-2", "--kind", "psk", "--out", other); code != exitFailedPrecondition {
		t.Errorf("device enroll of a decommissioned device = %d (%s), want %d", code, stderr, exitFailedPrecondition)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("a failed enroll left %s: %v", other, err)
	}
}

// TestEnrollToken creates an enrolment token and has the real agent trade
// it for its credential, with the CA that --ca-out wrote.
func TestEnrollToken(t *testing.T) {
	s := startServer(t)
	s.mustRun(t, "device", "create", "pump-9", "--profile", "infusion-pump", "--model", "Alaris 8100", "--site", "north")
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.pem")

	code, stdout, stderr := s.run(t, "device", "enroll", "pump-9", "--ttl", "10m", "--ca-out", caPath)
	if code != exitOK {
		t.Fatalf("device enroll = %d, stderr %q", code, stderr)
	}
	token := strings.TrimSuffix(stdout, "\n")
	if !strings.HasPrefix(token, "mfe_") || strings.ContainsAny(token, " \n") {
		t.Fatalf("device enroll stdout = %q, want the token alone on one line", stdout)
	}
	if !strings.HasPrefix(stderr, "medfleetctl: the enrolment token of devices/pump-9 is shown only now") ||
		strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, token) {
		t.Errorf("device enroll stderr = %q, want one line of warning without the token", stderr)
	}
	checkMode(t, caPath, 0o644)
	ca, _ := os.ReadFile(caPath)
	serverCA, _ := os.ReadFile(s.cfg.CAPath())
	if !bytes.Equal(ca, serverCA) {
		t.Errorf("--ca-out wrote\n%s\nwant medfleetd's CA\n%s", ca, serverCA)
	}

	var resp medfleetv1.CreateEnrollmentResponse
	s.mustJSON(t, &resp, "device", "enroll", "pump-9")
	if !strings.HasPrefix(resp.GetToken(), "mfe_") || resp.GetCaCertificate() == "" || resp.GetEnrollment().GetDevice() != "devices/pump-9" {
		t.Errorf("device enroll -o json = %v, want a token, the CA and the enrolment", &resp)
	}
	if d := resp.GetEnrollment().GetExpireTime().AsTime().Sub(resp.GetEnrollment().GetCreateTime().AsTime()); d != time.Hour {
		t.Errorf("enrolment valid for %v by default, want 1h", d)
	}

	runAgent(t, s, "pump-9", agent.Config{EnrolToken: token, CAFile: caPath, CredentialsFile: filepath.Join(dir, "creds.json")})
	if g := credentialGeneration(t, s, "pump-9"); g == 0 {
		t.Error("no credential after the agent enrolled")
	}
}

// TestCredentialRevoke revokes a device's credential.
func TestCredentialRevoke(t *testing.T) {
	s := startServer(t)
	s.mustRun(t, "device", "enroll", "pump-1", "--kind", "psk", "--out", filepath.Join(t.TempDir(), "pump-1.json"))

	out := s.mustRun(t, "device", "credential", "get", "pump-1")
	for _, want := range []string{"name:       devices/pump-1/credential\n", "kind:       psk\n", "generation: 1\n", "issuer:     users/admin\n", "revoked:    no\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("device credential get printed\n%s\nwant a line %q", out, want)
		}
	}
	out = s.mustRun(t, "device", "credential", "revoke", "devices/pump-1/credential")
	if !strings.Contains(out, "\nrevoked:    20") {
		t.Errorf("device credential revoke printed\n%s\nwant the time it was revoked", out)
	}
	var cred medfleetv1.DeviceCredential
	s.mustJSON(t, &cred, "device", "credential", "get", "devices/pump-1")
	if cred.GetRevokeTime() == nil || cred.GetGeneration() != 1 {
		t.Errorf("device credential get after revoke = %v, want generation 1, revoked", &cred)
	}
	if code, _, _ := s.run(t, "device", "credential", "get", "pump-2"); code != exitNotFound {
		t.Errorf("device credential get of a device without one = %d, want %d", code, exitNotFound)
	}
}

// TestCredentialsEncode pins the credentials file to package agent's own
// encoding, for a value with every field.
func TestCredentialsEncode(t *testing.T) {
	c := agentCredentials{Device: "pump-1", Kind: kindCert, PSK: []byte("0123456789abcdef\x00\xff"), Certificate: "CERT\n", PrivateKey: "KEY\n", CA: "CA\n"}
	got, err := c.encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.json")
	if err := agent.WriteCredentials(path, agent.Credentials(c), false); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(path)
	if !bytes.Equal(got, want) {
		t.Errorf("encode() =\n%s\nagent.WriteCredentials wrote\n%s", got, want)
	}
	back, err := agent.ReadCredentials(path)
	if err != nil || agentCredentials(back).Device != c.Device || !bytes.Equal(back.PSK, c.PSK) {
		t.Errorf("agent.ReadCredentials = %v, %v; want what was written", back, err)
	}
}
