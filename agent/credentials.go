package agent

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/medfleet/medfleet/coap"
)

// CredentialsFile is the name of the credentials file in Config.StateDir,
// unless Config.CredentialsFile names another.
const CredentialsFile = "credentials.json"

// minPSK is the shortest pre-shared key an agent accepts, in bytes.
const minPSK = 16

// ErrNoCredential is an agent that must speak DTLS but has no credential
// and no enrolment token to get one with.
var ErrNoCredential = errors.New("agent: no credential")

// Credentials is a device's DTLS credential, as kept in its credentials
// file (JSON, mode 0600): a pre-shared key (the PSK identity is the device
// id) or a certificate from Medfleet's device CA (common name = device id)
// with its private key, and Medfleet's CA that signs medfleetd's
// certificate. medfleetctl writes the same format.
//
// Credentials hold secrets: String and LogValue show only the device and
// the kind.
type Credentials struct {
	Device string `json:"device"`
	Kind   string `json:"kind"` // coap.KindPSK or coap.KindCertificate
	// PSK is the pre-shared key (base64 in JSON).
	PSK []byte `json:"psk,omitempty"`
	// Certificate and PrivateKey are PEM; the key is ECDSA.
	Certificate string `json:"certificate,omitempty"`
	PrivateKey  string `json:"private_key,omitempty"`
	// CA is the PEM of the CA that signs medfleetd's certificate.
	CA string `json:"ca,omitempty"`
}

func (c Credentials) String() string {
	return fmt.Sprintf("credentials{device %q, kind %q}", c.Device, c.Kind)
}

// LogValue keeps the secrets out of log lines.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String(keyDevice, c.Device), slog.String(keyKind, c.Kind))
}

// credential is a checked Credentials, ready for a DTLS handshake.
type credential struct {
	kind string
	psk  []byte
	cert tls.Certificate
	cas  []*x509.Certificate // from the credentials file
}

// check parses c and checks that it is a usable credential of device.
func (c Credentials) check(device string) (*credential, error) {
	if c.Device != device {
		return nil, fmt.Errorf("holds the credential of device %q, not %q", c.Device, device)
	}
	out := &credential{kind: c.Kind}
	switch c.Kind {
	case coap.KindPSK:
		if len(c.PSK) < minPSK {
			return nil, fmt.Errorf("psk: %d bytes, want at least %d", len(c.PSK), minPSK)
		}
		out.psk = c.PSK
	case coap.KindCertificate:
		cert, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.PrivateKey))
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		if _, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok {
			return nil, fmt.Errorf("private_key: %T is not an ECDSA key", cert.PrivateKey)
		}
		if cert.Leaf == nil {
			if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return nil, fmt.Errorf("certificate: %w", err)
			}
		}
		if cn := cert.Leaf.Subject.CommonName; cn != device {
			return nil, fmt.Errorf("certificate: common name %q is not the device id %q", cn, device)
		}
		out.cert = cert
	default:
		return nil, fmt.Errorf("kind: %q is not %q or %q", c.Kind, coap.KindPSK, coap.KindCertificate)
	}
	if c.CA != "" {
		cas, err := parseCertificates([]byte(c.CA))
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		out.cas = cas
	}
	return out, nil
}

// ReadCredentials reads a credentials file. A missing file is an error that
// wraps fs.ErrNotExist. It checks the JSON, not the credential.
func ReadCredentials(path string) (Credentials, error) {
	var c Credentials
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("agent: credentials: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Credentials{}, fmt.Errorf("agent: credentials: %s: %w", path, err)
	}
	return c, nil
}

// WriteCredentials replaces the credentials file at path atomically, with
// mode 0600 (a temporary file in the same directory, renamed over it). With
// sync the contents and the rename are durable when it returns.
func WriteCredentials(path string, c Credentials, sync bool) error {
	_, err := c.write(path, sync)
	return err
}

// write writes the credentials file and returns its contents.
func (c Credentials) write(path string, sync bool) ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("agent: credentials: %w", err)
	}
	b = append(b, '\n')
	if err := writeFileAtomic(path, b, sync); err != nil {
		return nil, fmt.Errorf("agent: credentials: %w", err)
	}
	return b, nil
}

// writeFileAtomic replaces path with data, mode 0600: a temporary file in
// the same directory, fsync when sync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, sync bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if sync {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("fsync dir: %w", err)
		}
	}
	return nil
}

// parseCertificates parses every CERTIFICATE block of PEM data; it fails
// when there is none.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// certificatePEM encodes DER certificates as PEM.
func certificatePEM(ders ...[]byte) string {
	var out []byte
	for _, der := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return string(out)
}
