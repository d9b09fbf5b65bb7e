package manifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

func testManifest() Manifest {
	return Manifest{Models: []string{"pump-b", "pump-a", "pump-b"}, Version: "2.4.1",
		SHA256: strings.Repeat("ab", 32), Size: 4 << 20}
}

func TestBytesIsCanonical(t *testing.T) {
	want := "medfleet-firmware-manifest-v1\nmodels=pump-a,pump-b\nversion=2.4.1\nsha256=" +
		strings.Repeat("ab", 32) + "\nsize=4194304\n"
	if got := string(testManifest().Bytes()); got != want {
		t.Fatalf("Bytes:\n%s\nwant\n%s", got, want)
	}
}

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	m := testManifest()
	sig := Sign(priv, m)

	id, err := Keys{other, pub}.Verify(m, sig)
	if err != nil || id != KeyID(pub) || len(id) != 16 {
		t.Fatalf("Verify = %q, %v; want %q", id, err, KeyID(pub))
	}
	for name, change := range map[string]func(*Manifest){
		"version": func(m *Manifest) { m.Version = "2.4.2" },
		"size":    func(m *Manifest) { m.Size++ },
		"sha256":  func(m *Manifest) { m.SHA256 = strings.Repeat("cd", 32) },
		"models":  func(m *Manifest) { m.Models = []string{"pump-a"} },
	} {
		changed := testManifest()
		change(&changed)
		if _, err := (Keys{pub}).Verify(changed, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s changed: Verify = %v, want ErrBadSignature", name, err)
		}
	}
	if _, err := (Keys{other}).Verify(m, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("untrusted key: %v", err)
	}
	if _, err := (Keys{pub}).Verify(m, sig[:10]); !errors.Is(err, ErrBadSignature) {
		t.Errorf("short signature: %v", err)
	}
}

func TestKeysPEMRoundTrip(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	keys, err := ParsePublicKeys(append(MarshalPublicKey(pub), MarshalPublicKey(pub2)...))
	if err != nil || len(keys) != 2 || !keys[0].Equal(pub) || !keys[1].Equal(pub2) {
		t.Fatalf("ParsePublicKeys = %v, %v", keys, err)
	}
	back, err := ParsePrivateKey(MarshalPrivateKey(priv))
	if err != nil || !back.Equal(priv) {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	if _, err := ParsePublicKeys([]byte("junk")); err == nil {
		t.Error("junk accepted as public keys")
	}
	if _, err := ParsePublicKeys(MarshalPrivateKey(priv)); err == nil {
		t.Error("a private key accepted as a public key")
	}
}

func TestValidate(t *testing.T) {
	if err := testManifest().Validate(); err != nil {
		t.Fatal(err)
	}
	for field, change := range map[string]func(*Manifest){
		"models":  func(m *Manifest) { m.Models = nil },
		"version": func(m *Manifest) { m.Version = "2 4" },
		"sha256":  func(m *Manifest) { m.SHA256 = strings.Repeat("AB", 32) },
		"size":    func(m *Manifest) { m.Size = 0 },
	} {
		m := testManifest()
		change(&m)
		var fe *FieldError
		if err := m.Validate(); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("bad %s: Validate = %v", field, err)
		}
	}
	m := testManifest()
	m.Models = []string{"a,b"}
	if err := m.Validate(); err == nil {
		t.Error("a model with a comma accepted: the canonical form would be ambiguous")
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.2", 1},
		{"2.0", "2.0.1", -1},
		{"2.0.1", "2.0.1", 0},
		{"3.1.0-rc1", "3.1.0-rc2", -1},
		{"10", "9", 1},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}
