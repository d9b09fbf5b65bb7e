package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCALifecycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	ca, err := LoadOrCreateCA(dir, "ca", "Medfleet test CA", now)
	if err != nil {
		t.Fatalf("LoadOrCreateCA: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	again, err := LoadOrCreateCA(dir, "ca", "ignored", now)
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("LoadOrCreateCA again = %v, %v; want the same CA", again.Cert.Subject, err)
	}
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(dir, "ca", "x", now); err == nil {
		t.Fatal("LoadOrCreateCA with the key missing: no error, want one (never replace half a CA)")
	}
}

func TestServerAndClientCertificates(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := LoadOrCreateCA(dir, "ca", "Medfleet test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := LoadOrCreateServerCert(ca, dir, "server", []string{"medfleetd", "127.0.0.1"}, now)
	if err != nil {
		t.Fatalf("LoadOrCreateServerCert: %v", err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: ca.Pool()}); err != nil {
		t.Errorf("server certificate for 127.0.0.1: %v", err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{DNSName: "medfleetd", Roots: ca.Pool()}); err != nil {
		t.Errorf("server certificate for medfleetd: %v", err)
	}
	reread, err := LoadOrCreateServerCert(ca, dir, "server", []string{"other"}, now)
	if err != nil || !reread.Leaf.Equal(pair.Leaf) {
		t.Errorf("second LoadOrCreateServerCert issued a new certificate (%v), want the file's", err)
	}

	key, _ := NewKey()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "mallory"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.SignCSR(csr, "alice", now, 24*time.Hour)
	if err != nil {
		t.Fatalf("SignCSR: %v", err)
	}
	if cert.Subject.CommonName != "alice" {
		t.Errorf("CN = %q, want alice (the request's subject is ignored)", cert.Subject.CommonName)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := ca.SignCSR([]byte("junk"), "alice", now, time.Hour); err == nil {
		t.Error("SignCSR(junk): no error")
	}
}

func TestSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "psk.key")
	a, err := LoadOrCreateSecret(path)
	if err != nil || len(a) != 32 {
		t.Fatalf("LoadOrCreateSecret = %d bytes, %v", len(a), err)
	}
	b, err := LoadOrCreateSecret(path)
	if err != nil || string(a) != string(b) {
		t.Fatalf("second LoadOrCreateSecret differs (%v)", err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadOrCreateSecret(path); err == nil {
		t.Error("a corrupt secret file: no error")
	}
}
