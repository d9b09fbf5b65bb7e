// Package credentials keeps the credentials devices use to open a DTLS
// session with medfleetd: pre-shared keys, certificates from Medfleet's
// device CA, and the one-time enrolment tokens a device trades for either.
//
// Nothing secret is stored in etcd. A PSK is derived from the server's
// secret and the credential's generation, so issuing a new one (a higher
// generation) retires the old; a certificate is known by its serial; an
// enrolment token is stored as the SHA-256 of its secret.
//
// It imports proto and internal packages only; the gateway reaches it
// through its own interface, the server through this package's API.
package credentials

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/internal/etcdview"
	"github.com/medfleet/medfleet/internal/pki"
	"github.com/medfleet/medfleet/internal/token"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Keys under the store's prefix.
const (
	credentialsPrefix = "/medfleet/v1/credentials/"
	enrollmentsPrefix = "/medfleet/v1/enrollments/"
)

// PSKSize is the length of a derived pre-shared key, in bytes: 32 base64url
// characters carrying 192 bits, so that the key can be typed into any
// device's provisioning tool (libcoap's -k takes text).
const PSKSize = 32

// Expected outcomes.
var (
	ErrNotFound = errors.New("credentials: device has no credential")
	// ErrInvalidToken covers an unknown, expired, used or misdirected
	// enrolment token: the caller learns nothing about which.
	ErrInvalidToken = errors.New("credentials: enrolment token is invalid, expired, used, or for another device")
	// ErrRefused is a DTLS credential that is not the device's current one.
	ErrRefused  = errors.New("credentials: not the device's current credential")
	ErrConflict = errors.New("credentials: changed concurrently; retry")
)

// FieldError is a request field that cannot be used.
type FieldError struct{ Field, Reason string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Config tunes the store.
type Config struct {
	// EnrollmentTTL is how long an enrolment token is valid when the caller
	// does not say; MaxEnrollmentTTL bounds what a caller may ask.
	EnrollmentTTL    time.Duration `yaml:"enrollment_ttl"`
	MaxEnrollmentTTL time.Duration `yaml:"max_enrollment_ttl"`
	// CertificateValidity is the lifetime of device certificates.
	CertificateValidity time.Duration `yaml:"certificate_validity"`
}

// DefaultConfig returns the defaults documented in docs/operations.md.
func DefaultConfig() Config {
	return Config{EnrollmentTTL: time.Hour, MaxEnrollmentTTL: 7 * 24 * time.Hour, CertificateValidity: 3 * 365 * 24 * time.Hour}
}

// Validate names the bad field by its path.
func (c Config) Validate() error {
	switch {
	case c.EnrollmentTTL < time.Minute:
		return fmt.Errorf("credentials.enrollment_ttl: %v is under 1m", c.EnrollmentTTL)
	case c.MaxEnrollmentTTL < c.EnrollmentTTL:
		return fmt.Errorf("credentials.max_enrollment_ttl: %v is under enrollment_ttl", c.MaxEnrollmentTTL)
	case c.CertificateValidity < 24*time.Hour:
		return fmt.Errorf("credentials.certificate_validity: %v is under 24h", c.CertificateValidity)
	}
	return nil
}

// Store issues, checks, rotates and revokes device credentials.
type Store struct {
	cfg    Config
	client *clientv3.Client
	secret []byte
	ca     *pki.CA
	log    *slog.Logger
	now    func() time.Time
	view   *etcdview.View[*pb.DeviceCredential]
}

// New builds a store over etcd; secret derives PSKs, ca signs device
// certificates. It starts nothing.
func New(cfg Config, client *clientv3.Client, secret []byte, ca *pki.CA, log *slog.Logger, now func() time.Time) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(secret) < 32 {
		return nil, errors.New("credentials: secret shorter than 32 bytes")
	}
	return &Store{cfg: cfg, client: client, secret: secret, ca: ca, log: log, now: now,
		view: etcdview.New(client, credentialsPrefix, etcdview.Proto[pb.DeviceCredential], log)}, nil
}

// Load reads every credential; call it before serving DTLS.
func (s *Store) Load(ctx context.Context) error {
	_, err := s.view.Load(ctx)
	return err
}

// Run follows changes (other replicas' issues and revocations) until ctx
// ends.
func (s *Store) Run(ctx context.Context) error { return s.view.Run(ctx) }

// CA is the device CA.
func (s *Store) CA() *pki.CA { return s.ca }

// Len is the number of devices with a credential record.
func (s *Store) Len() int { return s.view.Len() }

// Get returns a device's credential record.
func (s *Store) Get(device string) (*pb.DeviceCredential, error) {
	c, rev, ok := s.view.Get(device)
	if !ok {
		return nil, ErrNotFound
	}
	return withEtag(c, rev), nil
}

// psk derives generation gen of device's pre-shared key.
func (s *Store) psk(device string, gen uint64) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("medfleet psk v1\x00"))
	m.Write([]byte(device))
	m.Write([]byte{0})
	m.Write(binary.BigEndian.AppendUint64(nil, gen))
	return []byte(base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:24]))
}

// IssuePSK gives device a new pre-shared key; its previous credential, of
// either kind, stops working.
func (s *Store) IssuePSK(ctx context.Context, device, issuer string) (*pb.DeviceCredential, []byte, error) {
	c, err := s.issue(ctx, device, issuer, func(c *pb.DeviceCredential) error {
		c.Kind = pb.CredentialKind_CREDENTIAL_KIND_PSK
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return c, s.psk(device, c.Generation), nil
}

// IssueCertificate signs a device certificate for the key in csr (PKCS #10,
// PEM or DER); the previous credential stops working.
func (s *Store) IssueCertificate(ctx context.Context, device, issuer string, csr []byte) (*pb.DeviceCredential, *x509.Certificate, error) {
	var cert *x509.Certificate
	c, err := s.issue(ctx, device, issuer, func(c *pb.DeviceCredential) error {
		var err error
		if cert, err = s.ca.SignCSR(csr, device, s.now(), s.cfg.CertificateValidity); err != nil {
			return &FieldError{Field: "csr", Reason: err.Error()}
		}
		c.Kind = pb.CredentialKind_CREDENTIAL_KIND_CERTIFICATE
		c.CertificateSerial = pki.SerialHex(cert)
		c.CertificateExpireTime = timestamppb.New(cert.NotAfter)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return c, cert, nil
}

// issue writes the next generation of device's credential, filled by fill.
func (s *Store) issue(ctx context.Context, device, issuer string, fill func(*pb.DeviceCredential) error) (*pb.DeviceCredential, error) {
	prev, rev, _ := s.view.Get(device)
	c := &pb.DeviceCredential{
		Name:       "devices/" + device + "/credential",
		Generation: prev.GetGeneration() + 1,
		IssueTime:  timestamppb.New(s.now()),
		Issuer:     issuer,
	}
	if err := fill(c); err != nil {
		return nil, err
	}
	newRev, err := s.put(ctx, device, c, rev)
	if err != nil {
		return nil, err
	}
	return withEtag(c, newRev), nil
}

// Revoke ends device's credential: its sessions are refused at their next
// request, its next handshake fails.
func (s *Store) Revoke(ctx context.Context, device string) (*pb.DeviceCredential, error) {
	prev, rev, ok := s.view.Get(device)
	if !ok {
		return nil, ErrNotFound
	}
	if prev.RevokeTime != nil {
		return withEtag(prev, rev), nil
	}
	c := proto.CloneOf(prev)
	c.Etag = ""
	c.RevokeTime = timestamppb.New(s.now())
	newRev, err := s.put(ctx, device, c, rev)
	if err != nil {
		return nil, err
	}
	return withEtag(c, newRev), nil
}

// put writes c if the key is still at rev (0: absent).
func (s *Store) put(ctx context.Context, device string, c *pb.DeviceCredential, rev int64) (int64, error) {
	b, err := proto.Marshal(c)
	if err != nil {
		return 0, err
	}
	key := credentialsPrefix + device
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("credentials: %w", err)
	}
	if !resp.Succeeded {
		return 0, ErrConflict
	}
	s.view.Put(device, c, resp.Header.Revision)
	return resp.Header.Revision, nil
}

func withEtag(c *pb.DeviceCredential, rev int64) *pb.DeviceCredential {
	c = proto.CloneOf(c)
	c.Etag = fmt.Sprintf("%d", rev)
	return c
}

// PSK returns the key of a DTLS client that presents identity: the current
// generation of a device whose credential is a PSK and is not revoked.
func (s *Store) PSK(identity string) ([]byte, error) {
	c, _, ok := s.view.Get(identity)
	if !ok || c.Kind != pb.CredentialKind_CREDENTIAL_KIND_PSK || c.RevokeTime != nil {
		return nil, ErrRefused
	}
	return s.psk(identity, c.Generation), nil
}

// VerifyCertificate checks a device certificate that the DTLS stack has
// already verified against the device CA: it must be the device's current,
// unrevoked credential. It returns the device and the generation.
func (s *Store) VerifyCertificate(cert *x509.Certificate) (string, uint64, error) {
	device := cert.Subject.CommonName
	c, _, ok := s.view.Get(device)
	if !ok || c.Kind != pb.CredentialKind_CREDENTIAL_KIND_CERTIFICATE || c.RevokeTime != nil ||
		c.CertificateSerial != pki.SerialHex(cert) {
		return "", 0, ErrRefused
	}
	return device, c.Generation, nil
}

// Generation returns the generation of device's usable credential, or
// false when it has none or it is revoked.
func (s *Store) Generation(device string) (uint64, bool) {
	c, _, ok := s.view.Get(device)
	if !ok || c.RevokeTime != nil {
		return 0, false
	}
	return c.Generation, true
}

// Current reports whether a session authenticated with generation gen of
// device's credential may still be used.
func (s *Store) Current(device string, gen uint64) bool {
	g, ok := s.Generation(device)
	return ok && g == gen
}

// CreateEnrollment makes a one-time token with which device may obtain its
// credential; ttl 0 takes the default.
func (s *Store) CreateEnrollment(ctx context.Context, device, creator string, ttl time.Duration) (*pb.Enrollment, string, error) {
	switch {
	case ttl == 0:
		ttl = s.cfg.EnrollmentTTL
	case ttl < time.Minute || ttl > s.cfg.MaxEnrollmentTTL:
		return nil, "", &FieldError{Field: "ttl", Reason: fmt.Sprintf("%v is outside 1m to %v", ttl, s.cfg.MaxEnrollmentTTL)}
	}
	id, hash, bearer := token.New(token.Enrollment)
	now := s.now()
	e := &pb.Enrollment{
		Name: "enrollments/" + id, Device: "devices/" + device, Creator: creator,
		CreateTime: timestamppb.New(now), ExpireTime: timestamppb.New(now.Add(ttl)), SecretSha256: hash,
	}
	b, err := proto.Marshal(e)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// The lease only collects tokens nobody used; the expiry check below
	// is what refuses them.
	lease, err := s.client.Grant(ctx, int64(ttl/time.Second)+60)
	if err != nil {
		return nil, "", fmt.Errorf("credentials: %w", err)
	}
	if _, err := s.client.Put(ctx, enrollmentsPrefix+id, string(b), clientv3.WithLease(lease.ID)); err != nil {
		return nil, "", fmt.Errorf("credentials: %w", err)
	}
	e = proto.CloneOf(e)
	e.SecretSha256 = nil
	return e, bearer, nil
}

// Redeem consumes an enrolment token for device and returns the
// enrolment's name. A token works once: two devices racing with it cannot
// both win.
func (s *Store) Redeem(ctx context.Context, bearer, device string) (string, error) {
	id, secret, ok := token.Parse(bearer, token.Enrollment)
	if !ok {
		return "", ErrInvalidToken
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	key := enrollmentsPrefix + id
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", ErrInvalidToken
	}
	var e pb.Enrollment
	if err := proto.Unmarshal(resp.Kvs[0].Value, &e); err != nil {
		return "", fmt.Errorf("credentials: enrolment %s: %w", id, err)
	}
	if !token.Matches(e.SecretSha256, secret) || e.Device != "devices/"+device ||
		!s.now().Before(e.ExpireTime.AsTime()) {
		return "", ErrInvalidToken
	}
	txn, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	if !txn.Succeeded {
		return "", ErrInvalidToken // used a moment ago
	}
	return e.Name, nil
}
