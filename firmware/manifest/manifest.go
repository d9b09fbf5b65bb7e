// Package manifest is what a firmware signature covers and how it is
// checked: the canonical bytes of a manifest (target models, version,
// SHA-256, size), ed25519 signing keys in PEM, and the comparison of
// version strings.
//
// It imports the standard library only, so that both medfleetd and
// medfleet-agent (which links neither etcd nor gRPC) verify images with
// the same code.
package manifest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Header is the first line of a manifest's canonical form; it names the
// format, so that a signature over anything else never verifies as one.
const Header = "medfleet-firmware-manifest-v1"

// Manifest is what a firmware signature covers.
type Manifest struct {
	// Models the image is built for (device model names, as devices
	// register them).
	Models []string
	// Version the image installs.
	Version string
	// SHA256 of the image, 64 lower-case hex digits.
	SHA256 string
	// Size of the image in bytes.
	Size uint64
}

var (
	versionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$`)
	modelPattern   = regexp.MustCompile(`^[^\s,][^,\n]{0,127}$`)
	hexPattern     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// FieldError names the manifest field that is wrong.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ValidateVersion reports whether v can be a firmware version: 1 to 64
// characters of [0-9A-Za-z.+_-], starting with a letter or digit.
func ValidateVersion(v string) error {
	if !versionPattern.MatchString(v) {
		return fmt.Errorf("%q is not a version: 1-64 characters of [0-9A-Za-z.+_-], starting with a letter or digit", v)
	}
	return nil
}

// ValidateSHA256 reports whether s is 64 lower-case hex digits.
func ValidateSHA256(s string) error {
	if !hexPattern.MatchString(s) {
		return errors.New("not 64 lower-case hex digits")
	}
	return nil
}

// Validate checks every field; the error is a *FieldError.
func (m Manifest) Validate() error {
	if len(m.Models) == 0 {
		return &FieldError{"models", errors.New("at least one model is required")}
	}
	for _, model := range m.Models {
		if !modelPattern.MatchString(model) {
			return &FieldError{"models", fmt.Errorf("%q is not a model name: 1-128 characters, no comma or newline, not starting with a space", model)}
		}
	}
	if err := ValidateVersion(m.Version); err != nil {
		return &FieldError{"version", err}
	}
	if err := ValidateSHA256(m.SHA256); err != nil {
		return &FieldError{"sha256", err}
	}
	if m.Size == 0 {
		return &FieldError{"size", errors.New("must be positive")}
	}
	return nil
}

// Bytes is the canonical form that is signed: five lines of text,
//
//	medfleet-firmware-manifest-v1
//	models=cpap-s10,cpap-s11
//	version=2.4.1
//	sha256=9f86d0...
//	size=4194304
//
// each ending in "\n", models sorted and joined by commas. Anyone can
// produce it with printf and sign it with `openssl pkeyutl -sign -rawin`.
func (m Manifest) Bytes() []byte {
	models := slices.Clone(m.Models)
	slices.Sort(models)
	models = slices.Compact(models)
	return fmt.Appendf(nil, "%s\nmodels=%s\nversion=%s\nsha256=%s\nsize=%d\n",
		Header, strings.Join(models, ","), m.Version, m.SHA256, m.Size)
}

// Sign signs m's canonical form.
func Sign(key ed25519.PrivateKey, m Manifest) []byte {
	return ed25519.Sign(key, m.Bytes())
}

// ErrBadSignature: no trusted key made the signature.
var ErrBadSignature = errors.New("manifest: the signature is not from a trusted key")

// Keys are the trusted signing keys.
type Keys []ed25519.PublicKey

// Verify returns the id of the trusted key that signed m, or ErrBadSignature.
func (k Keys) Verify(m Manifest, sig []byte) (string, error) {
	if len(sig) != ed25519.SignatureSize {
		return "", fmt.Errorf("%w: %d bytes, an ed25519 signature has %d", ErrBadSignature, len(sig), ed25519.SignatureSize)
	}
	msg := m.Bytes()
	for _, pub := range k {
		if ed25519.Verify(pub, msg, sig) {
			return KeyID(pub), nil
		}
	}
	return "", ErrBadSignature
}

// KeyID names a public key: the first 8 bytes of the SHA-256 of its
// PKIX encoding, in hex (16 digits).
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}

// ParsePublicKeys reads every "PUBLIC KEY" PEM block in data (PKIX, as
// `openssl pkey -pubout` writes them); each must be an ed25519 key.
func ParsePublicKeys(data []byte) (Keys, error) {
	var keys Keys
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("manifest: PEM block %d is %q, not PUBLIC KEY", n, b.Type)
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("manifest: PEM block %d: %w", n, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("manifest: PEM block %d is a %T key, not ed25519", n, k)
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("manifest: no PUBLIC KEY PEM block")
	}
	return keys, nil
}

// ParsePrivateKey reads a "PRIVATE KEY" PEM block (PKCS #8, as `openssl
// genpkey -algorithm ed25519` writes it).
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("manifest: no PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("manifest: private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("manifest: a %T key, not ed25519", k)
	}
	return priv, nil
}

// MarshalPublicKey encodes pub as a PUBLIC KEY PEM block.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub) // cannot fail for ed25519
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// MarshalPrivateKey encodes priv as a PRIVATE KEY PEM block.
func MarshalPrivateKey(priv ed25519.PrivateKey) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(priv) // cannot fail for ed25519
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// CompareVersions orders version strings: both are split at '.', '-', '+'
// and '_'; parts that are both numbers compare as numbers, others as text;
// a version that is a prefix of the other is lower. "1.10.0" > "1.9.2",
// "2.0" < "2.0.1".
func CompareVersions(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '_' })
	}
	pa, pb := split(a), split(b)
	for i := range min(len(pa), len(pb)) {
		na, ea := strconv.ParseUint(pa[i], 10, 64)
		nb, eb := strconv.ParseUint(pb[i], 10, 64)
		var c int
		if ea == nil && eb == nil {
			c = cmpUint(na, nb)
		} else {
			c = strings.Compare(pa[i], pb[i])
		}
		if c != 0 {
			return c
		}
	}
	return cmpUint(uint64(len(pa)), uint64(len(pb)))
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
