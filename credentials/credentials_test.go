package credentials

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/medfleet/medfleet/internal/etcdtest"
	"github.com/medfleet/medfleet/internal/pki"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newStore(t *testing.T) (*Store, *clock) {
	t.Helper()
	e := etcdtest.Start(t, "")
	clk := &clock{time.Now()}
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "device-ca", "test device CA", clk.t)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(DefaultConfig(), e.Client, bytes.Repeat([]byte{7}, 32), ca, slog.New(slog.DiscardHandler), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func TestPSKRotationAndRevocation(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	if _, err := s.PSK("pump-1"); !errors.Is(err, ErrRefused) {
		t.Fatalf("PSK of a device without a credential: %v, want ErrRefused", err)
	}
	c1, k1, err := s.IssuePSK(ctx, "pump-1", "users/admin")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.PSK("pump-1"); err != nil || !bytes.Equal(got, k1) || len(k1) != PSKSize {
		t.Fatalf("PSK = %x, %v; want the issued %x", got, err, k1)
	}
	c2, k2, err := s.IssuePSK(ctx, "pump-1", "users/admin")
	if err != nil {
		t.Fatal(err)
	}
	if c2.Generation != c1.Generation+1 || bytes.Equal(k1, k2) {
		t.Fatalf("rotation: generation %d -> %d, same key %v", c1.Generation, c2.Generation, bytes.Equal(k1, k2))
	}
	if s.Current("pump-1", c1.Generation) || !s.Current("pump-1", c2.Generation) {
		t.Error("after rotation the old generation is current, or the new one is not")
	}
	if _, err := s.Revoke(ctx, "pump-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PSK("pump-1"); !errors.Is(err, ErrRefused) {
		t.Errorf("PSK after revocation: %v, want ErrRefused", err)
	}
	if s.Current("pump-1", c2.Generation) {
		t.Error("a revoked credential is current")
	}
	if _, err := s.Revoke(ctx, "cpap-9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revoke(unknown) = %v, want ErrNotFound", err)
	}
}

func TestCertificate(t *testing.T) {
	s, _ := newStore(t)
	key, _ := pki.NewKey()
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "whatever"}}, key)
	c, cert, err := s.IssueCertificate(t.Context(), "pump-2", "users/admin", csr)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "pump-2" || c.CertificateSerial != pki.SerialHex(cert) {
		t.Fatalf("certificate CN %q serial %s, record serial %s", cert.Subject.CommonName, pki.SerialHex(cert), c.CertificateSerial)
	}
	if dev, gen, err := s.VerifyCertificate(cert); err != nil || dev != "pump-2" || gen != c.Generation {
		t.Fatalf("VerifyCertificate = %q, %d, %v", dev, gen, err)
	}
	if _, err := s.PSK("pump-2"); !errors.Is(err, ErrRefused) {
		t.Error("a certificate device got a PSK")
	}
	// A second certificate retires the first.
	if _, _, err := s.IssueCertificate(t.Context(), "pump-2", "users/admin", csr); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.VerifyCertificate(cert); !errors.Is(err, ErrRefused) {
		t.Errorf("the replaced certificate: %v, want ErrRefused", err)
	}
	var fe *FieldError
	if _, _, err := s.IssueCertificate(t.Context(), "pump-2", "users/admin", []byte("junk")); !errors.As(err, &fe) || fe.Field != "csr" {
		t.Errorf("IssueCertificate(junk) = %v, want a FieldError on csr", err)
	}
}

func TestEnrollmentIsSingleUse(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	e, tok, err := s.CreateEnrollment(ctx, "pump-3", "users/admin", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.SecretSha256) != 0 {
		t.Error("CreateEnrollment returned the secret's hash")
	}
	if _, err := s.Redeem(ctx, tok, "pump-4"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Redeem for another device = %v, want ErrInvalidToken", err)
	}
	if name, err := s.Redeem(ctx, tok, "pump-3"); err != nil || name != e.Name {
		t.Fatalf("Redeem = %q, %v; want %q", name, err, e.Name)
	}
	if _, err := s.Redeem(ctx, tok, "pump-3"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("second Redeem = %v, want ErrInvalidToken", err)
	}
	_, tok2, _ := s.CreateEnrollment(ctx, "pump-3", "users/admin", time.Minute)
	clk.t = clk.t.Add(2 * time.Minute)
	if _, err := s.Redeem(ctx, tok2, "pump-3"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Redeem of an expired token = %v, want ErrInvalidToken", err)
	}
	var fe *FieldError
	if _, _, err := s.CreateEnrollment(ctx, "pump-3", "users/admin", 30*24*time.Hour); !errors.As(err, &fe) || fe.Field != "ttl" {
		t.Errorf("CreateEnrollment(30 days) = %v, want a FieldError on ttl", err)
	}
}
