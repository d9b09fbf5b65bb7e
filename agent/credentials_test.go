package agent

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/medfleet/medfleet/coap"
)

func TestCredentialsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), CredentialsFile)
	want := Credentials{Device: "pump-0001", Kind: coap.KindPSK, PSK: testPSK(t), CA: "-----BEGIN CERTIFICATE-----\n"}
	for _, sync := range []bool{false, true} {
		if err := WriteCredentials(path, want, sync); err != nil {
			t.Fatal(err)
		}
		got, err := ReadCredentials(path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ReadCredentials() mismatch (-want +got):\n%s", diff)
		}
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only %s (no temporary file left)", len(entries), CredentialsFile)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"psk": "`+base64.StdEncoding.EncodeToString(want.PSK)+`"`)) {
		t.Errorf("file does not keep the PSK in base64:\n%s", raw)
	}
	if _, err := ReadCredentials(path + ".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadCredentials(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestCredentialsCheck(t *testing.T) {
	pki := newTestPKI(t)
	cert := pki.deviceCredentials(t, "cpap-0001")
	other := pki.deviceCredentials(t, "cpap-0002")
	tests := []struct {
		name  string
		creds Credentials
		want  string // in the error, "" for none
	}{
		{name: "psk", creds: Credentials{Device: "cpap-0001", Kind: coap.KindPSK, PSK: make([]byte, 16)}},
		{name: "certificate", creds: cert},
		{name: "other device", creds: Credentials{Device: "cpap-0002", Kind: coap.KindPSK, PSK: make([]byte, 16)}, want: `device "cpap-0002"`},
		{name: "short psk", creds: Credentials{Device: "cpap-0001", Kind: coap.KindPSK, PSK: make([]byte, 8)}, want: "psk: "},
		{name: "unknown kind", creds: Credentials{Device: "cpap-0001", Kind: "password"}, want: "kind: "},
		{name: "no certificate", creds: Credentials{Device: "cpap-0001", Kind: coap.KindCertificate}, want: "certificate: "},
		{name: "certificate of another device", creds: Credentials{
			Device: "cpap-0001", Kind: coap.KindCertificate, Certificate: other.Certificate, PrivateKey: other.PrivateKey,
		}, want: "common name"},
		{name: "key of another certificate", creds: Credentials{
			Device: "cpap-0001", Kind: coap.KindCertificate, Certificate: cert.Certificate, PrivateKey: other.PrivateKey,
		}, want: "certificate: "},
		{name: "bad ca", creds: Credentials{Device: "cpap-0001", Kind: coap.KindPSK, PSK: make([]byte, 16), CA: "nope"}, want: "ca: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.creds.check("cpap-0001")
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("check() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("check() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestCredentialsHideSecrets checks that printing or logging credentials
// shows neither the PSK nor the key.
func TestCredentialsHideSecrets(t *testing.T) {
	c := Credentials{Device: "pump-0001", Kind: coap.KindPSK, PSK: []byte("0123456789abcdef"), PrivateKey: "-----BEGIN PRIVATE KEY-----"}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", slog.Any("creds", c))
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%v", &c), buf.String()} {
		if strings.Contains(s, "0123456789") || strings.Contains(s, "MDEyMzQ1Njc4") || strings.Contains(s, "PRIVATE KEY") {
			t.Errorf("credentials printed as %q", s)
		}
		if !strings.Contains(s, "pump-0001") {
			t.Errorf("credentials printed as %q, want the device", s)
		}
	}
}

// TestLoadCredentials drives the agent's reading of its credentials file:
// a loose mode is a warning, a changed file is taken, an unusable one
// keeps the credential in use.
func TestLoadCredentials(t *testing.T) {
	cfg := testConfig("127.0.0.1:5684", "pump-0001", coap.ProfileInfusionPump)
	cfg.Insecure = false
	cfg.StateDir = t.TempDir()
	log, logs := capturedLogger(t)
	a, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.StateDir, CredentialsFile)
	first := Credentials{Device: cfg.DeviceID, Kind: coap.KindPSK, PSK: bytes.Repeat([]byte{1}, 16)}
	if err := WriteCredentials(path, first, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.loadCredentials(); err != nil {
		t.Fatalf("loadCredentials() = %v", err)
	}
	if a.creds == nil || !bytes.Equal(a.creds.psk, first.PSK) {
		t.Fatalf("credential = %+v, want the file's", a.creds)
	}
	if !strings.Contains(logs.String(), "mode 0600") || !strings.Contains(logs.String(), "-rw-r--r--") {
		t.Errorf("no warning about mode 0644:\n%s", logs)
	}

	// Unchanged: not parsed, not warned about again.
	if err := a.loadCredentials(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "mode 0600"); n != 1 {
		t.Errorf("%d warnings about the mode, want 1", n)
	}

	// Unusable: the credential in use stays, and the error is logged once.
	if err := os.WriteFile(path, []byte(`{"device":"pump-0001","kind":"psk","psk":"AAAA"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	a.reloadCredentials()
	a.reloadCredentials()
	if a.creds == nil || !bytes.Equal(a.creds.psk, first.PSK) {
		t.Errorf("credential after an unusable file = %+v, want the first one kept", a.creds)
	}
	if n := strings.Count(logs.String(), "credentials file unusable"); n != 1 {
		t.Errorf("%d errors about the unusable file, want 1", n)
	}

	// Rotated: taken.
	second := Credentials{Device: cfg.DeviceID, Kind: coap.KindPSK, PSK: bytes.Repeat([]byte{2}, 16)}
	if err := WriteCredentials(path, second, false); err != nil {
		t.Fatal(err)
	}
	a.reloadCredentials()
	if a.creds == nil || !bytes.Equal(a.creds.psk, second.PSK) {
		t.Errorf("credential after a rotation = %+v, want the second one", a.creds)
	}

	// Removed: the credential in use stays.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	a.reloadCredentials()
	if a.creds == nil || !bytes.Equal(a.creds.psk, second.PSK) {
		t.Errorf("credential after the file went = %+v, want the second one kept", a.creds)
	}
	checkNoSecrets(t, logs.String(), first.PSK, second.PSK)
}

// FuzzCredentials feeds arbitrary credentials files to the agent's check:
// errors are fine, panics are not.
func FuzzCredentials(f *testing.F) {
	f.Add([]byte(`{"device":"pump-0001","kind":"psk","psk":"AAAAAAAAAAAAAAAAAAAAAA=="}`))
	f.Add([]byte(`{"device":"pump-0001","kind":"cert","certificate":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n","private_key":"x","ca":"y"}`))
	f.Add([]byte(`{`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, CredentialsFile)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := ReadCredentials(path)
		if err != nil {
			return
		}
		_, _ = c.check("pump-0001")
	})
}
