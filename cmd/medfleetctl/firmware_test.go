package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/medfleet/medfleet/firmware/manifest"
	"github.com/medfleet/medfleet/internal/servertest"
	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// testFirmwareModel is the device model of the test images.
const testFirmwareModel = "Test Pump 100"

// startFirmwareServer is startServer with firmware.trusted_keys set to the
// public key file pub: a server that accepts images signed by its key.
func startFirmwareServer(t *testing.T, pub string) *testServer {
	t.Helper()
	cfg := servertest.SecureConfig(t)
	cfg.Firmware.TrustedKeys = pub
	srv := servertest.Start(t, cfg)
	return &testServer{cfg: cfg, srv: srv, env: map[string]string{
		envServer:    srv.Addrs().GRPC.String(),
		envCAFile:    cfg.CAPath(),
		envTokenFile: cfg.AdminTokenPath(),
	}}
}

// mustRunOffline runs a command line that must not need the server, and fails the
// test unless it exits 0; it returns stdout.
func mustRunOffline(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCLI(t, nil, append([]string{"--server", unreachable}, args...)...)
	if code != exitOK {
		t.Fatalf("medfleetctl %q = %d, want 0; stderr:\n%s", args, code, stderr)
	}
	return stdout
}

// testKey makes a signing key with "firmware keygen" in dir and returns
// the private and public key files.
func testKey(t *testing.T, dir string) (key, pub string) {
	t.Helper()
	key = filepath.Join(dir, "signing.key")
	mustRunOffline(t, "firmware", "keygen", "--out", key)
	return key, filepath.Join(dir, "signing.pub")
}

// testImage writes size random bytes to dir/name and returns the file and
// its sha256.
func testImage(t *testing.T, dir, name string, size int) (string, string) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return path, hex.EncodeToString(sum[:])
}

// uploadImage signs an image with key and uploads it, and returns the
// artifact.
func uploadImage(t *testing.T, s *testServer, key, image, model, version string) *medfleetv1.Artifact {
	t.Helper()
	sig := image + "." + version + ".sig"
	mustRunOffline(t, "firmware", "sign", "--key", key, "--model", model, "--version", version, "--out", sig, image)
	var a medfleetv1.Artifact
	s.mustJSON(t, &a, "firmware", "upload", "--model", model, "--version", version, "--sig", sig, image)
	return &a
}

func TestDecodeSignature(t *testing.T) {
	sig := make([]byte, ed25519.SignatureSize)
	rand.Read(sig)
	b64 := base64.StdEncoding.EncodeToString(sig)
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{name: "raw", data: sig},
		{name: "base64", data: []byte(b64)},
		{name: "base64 with newline", data: []byte(b64 + "\n")},
		{name: "base64 wrapped as openssl does", data: []byte(b64[:64] + "\n" + b64[64:] + "\n")},
		{name: "base64 without padding", data: []byte(base64.RawStdEncoding.EncodeToString(sig))},
		{name: "base64url", data: []byte(base64.URLEncoding.EncodeToString(sig))},
		{name: "empty", data: nil, wantErr: "empty"},
		{name: "whitespace", data: []byte(" \n"), wantErr: "empty"},
		{name: "short raw", data: sig[:63], wantErr: "neither a raw ed25519 signature"},
		{name: "base64 of too few bytes", data: []byte(base64.StdEncoding.EncodeToString(sig[:32])), wantErr: "base64 of 32 bytes"},
		{name: "hex", data: []byte(hex.EncodeToString(sig)), wantErr: "base64 of 96 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeSignature(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decodeSignature(%q) = %x, %v; want error %q", tc.data, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, sig) {
				t.Errorf("decodeSignature(%q) = %x, %v; want %x", tc.data, got, err, sig)
			}
		})
	}
}

func TestParseArtifactArg(t *testing.T) {
	sha := strings.Repeat("9f86d081", 8)
	tests := []struct {
		in        string
		want      string
		wantWhole bool
		wantErr   bool
	}{
		{in: sha, want: sha, wantWhole: true},
		{in: "artifacts/" + sha, want: sha, wantWhole: true},
		{in: strings.ToUpper(sha), want: sha, wantWhole: true},
		{in: "9f86d081", want: "9f86d081"},
		{in: "artifacts/9f86d0818", want: "9f86d0818"},
		{in: "9f86d08", wantErr: true},
		{in: "", wantErr: true},
		{in: "artifacts/", wantErr: true},
		{in: sha + "0", wantErr: true},
		{in: "9f86d08g", wantErr: true},
		{in: "rollouts/9f86d081", wantErr: true},
	}
	for _, tc := range tests {
		got, whole, err := parseArtifactArg(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want || whole != tc.wantWhole {
			t.Errorf("parseArtifactArg(%q) = %q, %v, %v; want %q, %v, error %v", tc.in, got, whole, err, tc.want, tc.wantWhole, tc.wantErr)
		}
	}
}

func TestPublicKeyPath(t *testing.T) {
	tests := map[string]string{
		"signing.key":          "signing.pub",
		"keys/site.pem":        "keys/site.pub",
		"signing":              "signing.pub",
		"keys/.key":            "keys/.key.pub",
		"signing.pub":          "signing.pub.pub",
		"/etc/medfleet/fw.key": "/etc/medfleet/fw.pub",
	}
	for in, want := range tests {
		if got := publicKeyPath(in); got != want {
			t.Errorf("publicKeyPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestByteSize(t *testing.T) {
	tests := map[int64]string{
		0:                 "0 B",
		812:               "812 B",
		1024:              "1.0 KiB",
		700000:            "683.6 KiB",
		4 << 20:           "4.0 MiB",
		256<<20 + 512<<10: "256.5 MiB",
		3 << 30:           "3.0 GiB",
	}
	for in, want := range tests {
		if got := byteSize(in); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestBlockedVersions(t *testing.T) {
	tests := []struct {
		name              string
		versions, reasons []string
		want              []*medfleetv1.BlockedVersion
		wantErr           string
	}{
		{name: "none"},
		{
			name:     "one reason each",
			versions: []string{"2.4.0", "2.4.1"}, reasons: []string{"FSN-1", "FSN-2"},
			want: []*medfleetv1.BlockedVersion{{Version: "2.4.0", Reason: "FSN-1"}, {Version: "2.4.1", Reason: "FSN-2"}},
		},
		{
			name:     "one reason for all",
			versions: []string{"2.4.0", "2.4.1"}, reasons: []string{"FSN-1"},
			want: []*medfleetv1.BlockedVersion{{Version: "2.4.0", Reason: "FSN-1"}, {Version: "2.4.1", Reason: "FSN-1"}},
		},
		{name: "no reason", versions: []string{"2.4.0"}, wantErr: "--block: needs a --reason"},
		{name: "reason alone", reasons: []string{"FSN-1"}, wantErr: "--reason: only with --block"},
		{name: "too few reasons", versions: []string{"1", "2", "3"}, reasons: []string{"a", "b"}, wantErr: "--reason: given 2 times for 3 --block"},
		{name: "empty reason", versions: []string{"2.4.0"}, reasons: []string{" "}, wantErr: "--reason: empty for --block 2.4.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := blockedVersions(tc.versions, tc.reasons)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("blockedVersions(%q, %q) = %v, %v; want error %q", tc.versions, tc.reasons, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("blockedVersions(%q, %q) mismatch (-want +got):\n%s", tc.versions, tc.reasons, diff)
			}
		})
	}
}

func TestPolicyChanges(t *testing.T) {
	cur := &medfleetv1.FirmwarePolicy{
		Model: testFirmwareModel, MinVersion: "1.0.0", Etag: "42",
		BlockedVersions: []*medfleetv1.BlockedVersion{{Version: "2.3.0", Reason: "FSN-0"}, {Version: "2.4.0", Reason: "FSN-1"}},
		UpdateTime:      ts(testNow),
	}
	empty := ""
	floor := "2.0.0"
	tests := []struct {
		name    string
		ch      policyChanges
		want    *medfleetv1.FirmwarePolicy
		wantErr string
	}{
		{
			name: "floor",
			ch:   policyChanges{minVersion: &floor},
			want: &medfleetv1.FirmwarePolicy{Model: testFirmwareModel, MinVersion: "2.0.0", Etag: "42", BlockedVersions: cur.GetBlockedVersions()},
		},
		{
			name: "floor removed",
			ch:   policyChanges{minVersion: &empty},
			want: &medfleetv1.FirmwarePolicy{Model: testFirmwareModel, Etag: "42", BlockedVersions: cur.GetBlockedVersions()},
		},
		{
			name: "block new, reblock, unblock",
			ch: policyChanges{
				block:   []*medfleetv1.BlockedVersion{{Version: "2.5.0", Reason: "FSN-2"}, {Version: "2.4.0", Reason: "FSN-1 rev 2"}},
				unblock: []string{"2.3.0", "9.9.9"},
			},
			want: &medfleetv1.FirmwarePolicy{Model: testFirmwareModel, MinVersion: "1.0.0", Etag: "42", BlockedVersions: []*medfleetv1.BlockedVersion{
				{Version: "2.4.0", Reason: "FSN-1 rev 2"}, {Version: "2.5.0", Reason: "FSN-2"},
			}},
		},
		{name: "nothing", wantErr: "nothing to change"},
		{name: "bad floor", ch: policyChanges{minVersion: new("2.0 beta")}, wantErr: `--min-version: "2.0 beta" is not a version`},
		{name: "bad block", ch: policyChanges{block: []*medfleetv1.BlockedVersion{{Version: "-1", Reason: "x"}}}, wantErr: "--block: "},
		{name: "bad unblock", ch: policyChanges{unblock: []string{""}}, wantErr: "--unblock: "},
		{
			name:    "block twice",
			ch:      policyChanges{block: []*medfleetv1.BlockedVersion{{Version: "2.5.0", Reason: "a"}, {Version: "2.5.0", Reason: "b"}}},
			wantErr: "--block 2.5.0: given twice",
		},
		{
			name:    "block and unblock",
			ch:      policyChanges{block: []*medfleetv1.BlockedVersion{{Version: "2.5.0", Reason: "a"}}, unblock: []string{"2.5.0"}},
			wantErr: "version 2.5.0: both --block and --unblock",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ch.check()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("check() = %v, want error %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, tc.ch.apply(cur), protocmp.Transform()); diff != "" {
				t.Errorf("apply() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// testArtifact is an artifact as the server returns it.
func testArtifact() *medfleetv1.Artifact {
	return &medfleetv1.Artifact{
		Name:           "artifacts/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Version:        "2.5.0",
		Models:         []string{"Test Pump 100", "Test Pump 110"},
		Sha256:         "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		SizeBytes:      4 << 20,
		SigningKeyId:   "dd0a0a8f19418b69",
		Description:    "fixes occlusion alarm\nlatency",
		CreateTime:     ts(testNow.Add(-3 * time.Hour)),
		Creator:        "users/admin",
		ActiveRollouts: []string{"rollouts/pumps-2-5-0"},
	}
}

func TestFirmwareOutput(t *testing.T) {
	old := &medfleetv1.Artifact{
		Name: "artifacts/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Version: "2.4.1",
		Models: []string{"Test Pump 100"}, Sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		SizeBytes: 900, SigningKeyId: "dd0a0a8f19418b69", CreateTime: ts(testNow.Add(-40 * 24 * time.Hour)),
	}
	policy := &medfleetv1.FirmwarePolicy{
		Model: "Test Pump 100", MinVersion: "2.0.0", Etag: "77", UpdateTime: ts(testNow.Add(-5 * time.Minute)),
		BlockedVersions: []*medfleetv1.BlockedVersion{{Version: "2.4.0", Reason: "recall FSN-2026-004"}, {Version: "2.3.9", Reason: "advisory\x1b[2J"}},
	}
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
		want  string
	}{
		{
			name:  "artifact",
			write: func(b *bytes.Buffer) error { return writeArtifact(b, testArtifact(), testNow) },
			want: `name:        artifacts/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
version:     2.5.0
models:      Test Pump 100
             Test Pump 110
size:        4.0 MiB (4194304 bytes)
sha256:      9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
signed by:   key dd0a0a8f19418b69
description: fixes occlusion alarm latency
created:     2026-03-01T09:00:00Z (3h ago) by users/admin
rollouts:    rollouts/pumps-2-5-0
`,
		},
		{
			name: "artifact list",
			write: func(b *bytes.Buffer) error {
				return writeArtifactTable(b, []*medfleetv1.Artifact{testArtifact(), old}, testNow)
			},
			want: `ARTIFACT      VERSION  MODELS                        SIZE     SIGNED BY         CREATED  ROLLOUTS
9f86d081884c  2.5.0    Test Pump 100, Test Pump 110  4.0 MiB  dd0a0a8f19418b69  3h ago   1
0123456789ab  2.4.1    Test Pump 100                 900 B    dd0a0a8f19418b69  40d ago  -
2 artifacts
`,
		},
		{
			name:  "no artifacts",
			write: func(b *bytes.Buffer) error { return writeArtifactTable(b, nil, testNow) },
			want:  "0 artifacts\n",
		},
		{
			name:  "policy",
			write: func(b *bytes.Buffer) error { return writePolicy(b, policy, testNow) },
			want: `model:       Test Pump 100
min version: 2.0.0
blocked:     2.4.0: recall FSN-2026-004
             2.3.9: "advisory\x1b[2J"
updated:     2026-03-01T11:55:00Z (5m ago)
etag:        77
`,
		},
		{
			name: "empty policy",
			write: func(b *bytes.Buffer) error {
				return writePolicy(b, &medfleetv1.FirmwarePolicy{Model: "Other"}, testNow)
			},
			want: `model:       Other
min version: none
blocked:     none
updated:     never
etag:        -
`,
		},
		{
			name: "policy list",
			write: func(b *bytes.Buffer) error {
				return writePolicyTable(b, []*medfleetv1.FirmwarePolicy{policy, {Model: "Other", MinVersion: "1.2"}}, testNow)
			},
			want: `MODEL          MIN VERSION  BLOCKED       UPDATED
Test Pump 100  2.0.0        2.4.0, 2.3.9  5m ago
Other          1.2          -             never
2 policies
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFirmwareOffline runs keygen, manifest and sign, which need no server,
// and checks what they make against package manifest and openssl's
// formats.
func TestFirmwareOffline(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "signing.key")
	out := mustRunOffline(t, "firmware", "keygen", "--out", key)

	// The private key: PKCS #8 PEM, mode 0600; the public key beside it.
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keygen: %s has mode %v, want 0600", key, fi.Mode().Perm())
	}
	keyPEM, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := manifest.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatalf("keygen wrote a private key that does not parse: %v", err)
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, "signing.pub"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := manifest.ParsePublicKeys(pubPEM)
	if err != nil || len(keys) != 1 || !keys[0].Equal(sk.Public()) {
		t.Fatalf("keygen: signing.pub = %v, %v; want the public key of signing.key", keys, err)
	}
	if got, want := keyValue(t, out, "key id"), manifest.KeyID(keys[0]); got != want {
		t.Errorf("keygen: key id %q, want %q", got, want)
	}

	// Never replaced.
	code, _, stderr := runCLI(t, nil, "--server", unreachable, "firmware", "keygen", "--out", key, "--pub", filepath.Join(dir, "other.pub"))
	if code != exitUsage || !strings.Contains(stderr, "the file exists") {
		t.Errorf("keygen over an existing key = %d, %q; want %d, the file exists", code, stderr, exitUsage)
	}
	if again, _ := os.ReadFile(key); !bytes.Equal(again, keyPEM) {
		t.Error("keygen over an existing key changed it")
	}
	if _, err := os.Stat(filepath.Join(dir, "other.pub")); err == nil {
		t.Error("keygen refused the key file but wrote --pub")
	}
	code, _, stderr = runCLI(t, nil, "--server", unreachable, "firmware", "keygen", "--out", filepath.Join(dir, "second.key"), "--pub", filepath.Join(dir, "signing.pub"))
	if code != exitUsage || !strings.Contains(stderr, "--pub") {
		t.Errorf("keygen over an existing public key = %d, %q; want %d naming --pub", code, stderr, exitUsage)
	}
	if _, err := os.Stat(filepath.Join(dir, "second.key")); err == nil {
		t.Error("keygen refused --pub but left the private key behind")
	}

	// manifest prints exactly the canonical bytes.
	image, sha := testImage(t, dir, "pump.bin", 600<<10)
	got := mustRunOffline(t, "firmware", "manifest", "--model", "Test Pump 110", "--model", testFirmwareModel, "--version", "2.5.0", image)
	m := manifest.Manifest{Models: []string{testFirmwareModel, "Test Pump 110"}, Version: "2.5.0", SHA256: sha, Size: 600 << 10}
	if got != string(m.Bytes()) {
		t.Errorf("firmware manifest =\n%s\nwant manifest.Manifest.Bytes():\n%s", got, m.Bytes())
	}

	// sign writes the raw signature of those bytes, FILE.sig by default.
	mustRunOffline(t, "firmware", "sign", "--key", key, "--model", testFirmwareModel, "--model", "Test Pump 110", "--version", "2.5.0", image)
	sig, err := os.ReadFile(image + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := keys.Verify(m, sig); err != nil || id != manifest.KeyID(keys[0]) {
		t.Errorf("the signature of firmware sign: Verify = %q, %v; want key %s", id, err, manifest.KeyID(keys[0]))
	}
	if !ed25519.Verify(keys[0], []byte(got), sig) {
		t.Error("the signature does not verify over the output of firmware manifest, as openssl pkeyutl -verify -rawin would check it")
	}
	code, _, stderr = runCLI(t, nil, "--server", unreachable, "firmware", "sign", "--key", key, "--model", "m", "--version", "1", image)
	if code != exitUsage || !strings.Contains(stderr, "--force replaces it") {
		t.Errorf("sign over an existing signature = %d, %q; want %d", code, stderr, exitUsage)
	}
	mustRunOffline(t, "firmware", "sign", "--key", key, "--model", "m", "--version", "1", "--force", image)
	if again, _ := os.ReadFile(image + ".sig"); bytes.Equal(again, sig) || len(again) != ed25519.SignatureSize {
		t.Error("sign --force did not replace the signature with another one")
	}
}

// TestFirmwareUsageErrors checks bad firmware command lines: exit 2 before
// any RPC.
func TestFirmwareUsageErrors(t *testing.T) {
	dir := t.TempDir()
	image, _ := testImage(t, dir, "pump.bin", 1000)
	empty := filepath.Join(dir, "empty.bin")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	shortSig := filepath.Join(dir, "short.sig")
	if err := os.WriteFile(shortSig, make([]byte, 63), 0o644); err != nil {
		t.Fatal(err)
	}
	notAKey := filepath.Join(dir, "not.key")
	if err := os.WriteFile(notAKey, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "absent")
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"noun without verb", []string{"firmware"}, "firmware: missing command, one of: delete, get, keygen, list, manifest, policy, sign, upload"},
		{"policy without verb", []string{"firmware", "policy"}, "firmware policy: missing command, one of: get, list, set"},
		{"keygen without out", []string{"firmware", "keygen"}, "--out: required"},
		{"keygen pub is out", []string{"firmware", "keygen", "--out", "a.key", "--pub", "./a.key"}, `--pub "./a.key": the same file as --out`},
		{"keygen in a missing directory", []string{"firmware", "keygen", "--out", filepath.Join(absent, "k")}, "no such file or directory"},
		{"manifest without model", []string{"firmware", "manifest", "--version", "1", image}, "--model: required"},
		{"manifest without version", []string{"firmware", "manifest", "--model", "m", image}, "--version: required"},
		{"manifest bad version", []string{"firmware", "manifest", "--model", "m", "--version", "2.5 beta", image}, `--version: "2.5 beta" is not a version`},
		{"manifest bad model", []string{"firmware", "manifest", "--model", "a,b", "--version", "1", image}, `--model: "a,b" is not a model name`},
		{"manifest empty image", []string{"firmware", "manifest", "--model", "m", "--version", "1", empty}, "empty.bin: the file is empty"},
		{"manifest missing image", []string{"firmware", "manifest", "--model", "m", "--version", "1", absent}, "absent: no such file or directory"},
		{"manifest two files", []string{"firmware", "manifest", "--model", "m", "--version", "1", image, image}, "firmware manifest: want one image file, got 2"},
		{"sign without key", []string{"firmware", "sign", "--model", "m", "--version", "1", image}, "--key: required"},
		{"sign missing key", []string{"firmware", "sign", "--key", absent, "--model", "m", "--version", "1", image}, `--key "` + absent + `": no such file`},
		{"sign not a key", []string{"firmware", "sign", "--key", notAKey, "--model", "m", "--version", "1", image}, "no PRIVATE KEY PEM block"},
		{"upload without sig", []string{"firmware", "upload", "--model", "m", "--version", "1", image}, "--sig: required"},
		{"upload missing sig", []string{"firmware", "upload", "--model", "m", "--version", "1", "--sig", absent, image}, `--sig "` + absent + `"`},
		{"upload short sig", []string{"firmware", "upload", "--model", "m", "--version", "1", "--sig", shortSig, image}, "neither a raw ed25519 signature (64 bytes) nor base64"},
		{"get short prefix", []string{"firmware", "get", "9f86d08"}, "a unique prefix of at least 8"},
		{"get not hex", []string{"firmware", "get", "pump-2.5.0"}, `artifact "pump-2.5.0"`},
		{"delete prefix", []string{"firmware", "delete", "9f86d081"}, "want the whole sha256 to delete"},
		{"list with argument", []string{"firmware", "list", "x"}, "firmware list: want no arguments, got 1"},
		{"policy get empty model", []string{"firmware", "policy", "get", " "}, "firmware policy get: want a device model"},
		{"policy set nothing", []string{"firmware", "policy", "set", "m"}, "nothing to change"},
		{"policy set block without reason", []string{"firmware", "policy", "set", "m", "--block", "2.4.0"}, "--block: needs a --reason"},
		{"policy set bad floor", []string{"firmware", "policy", "set", "m", "--min-version", "a b"}, "--min-version: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--server", unreachable}, tc.args...)
			code, stdout, stderr := runCLI(t, nil, args...)
			if code != exitUsage {
				t.Errorf("run(%q) exit code = %d, want %d (stderr %q)", args, code, exitUsage, stderr)
			}
			if !strings.HasPrefix(stderr, "medfleetctl: ") || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("run(%q) stderr = %q, want medfleetctl: ...%s...", args, stderr, tc.wantStderr)
			}
			if stdout != "" {
				t.Errorf("run(%q) stdout = %q, want nothing", args, stdout)
			}
		})
	}
}

// TestFirmwareServer runs keygen, sign and upload against a real server that
// trusts the key, then lists, gets, refuses bad signatures, edits the
// policy and deletes.
func TestFirmwareServer(t *testing.T) {
	dir := t.TempDir()
	key, pub := testKey(t, dir)
	s := startFirmwareServer(t, pub)
	pubPEM, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := manifest.ParsePublicKeys(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	keyID := manifest.KeyID(keys[0])

	// Three chunks and a bit: 256 KiB, 256 KiB, 88 KiB.
	image, sha := testImage(t, dir, "pump-2.5.0.bin", 600<<10)
	mustRunOffline(t, "firmware", "sign", "--key", key, "--model", testFirmwareModel, "--version", "2.5.0", image)
	out := s.mustRun(t, "firmware", "upload", "--model", testFirmwareModel, "--version", "2.5.0", "--sig", image+".sig",
		"--description", "fixes occlusion alarm latency", image)
	for key, want := range map[string]string{
		"name": "artifacts/" + sha, "version": "2.5.0", "sha256": sha, "signed by": "key " + keyID,
		"size": "600.0 KiB (614400 bytes)", "description": "fixes occlusion alarm latency",
	} {
		if got := keyValue(t, out, key); got != want {
			t.Errorf("firmware upload: %s %q, want %q", key, got, want)
		}
	}

	// The same image again: already exists.
	code, _, stderr := s.run(t, "firmware", "upload", "--model", testFirmwareModel, "--version", "2.5.0", "--sig", image+".sig", image)
	if code != exitAlreadyExists {
		t.Errorf("upload of the same version again = %d, %q; want %d", code, stderr, exitAlreadyExists)
	}

	// A signature over another version: refused, naming the field.
	image2, sha2 := testImage(t, dir, "pump-2.6.0.bin", 1000)
	wrong := filepath.Join(dir, "wrong.sig")
	mustRunOffline(t, "firmware", "sign", "--key", key, "--model", testFirmwareModel, "--version", "2.6.1", "--out", wrong, image2)
	code, stdout, stderr := s.run(t, "firmware", "upload", "--model", testFirmwareModel, "--version", "2.6.0", "--sig", wrong, image2)
	if code != exitInvalidArgument || !strings.HasPrefix(stderr, "medfleetctl: invalid argument: metadata.signature: ") || stdout != "" {
		t.Errorf("upload with a signature over another version = %d, %q, %q; want %d, invalid argument: metadata.signature: ...", code, stdout, stderr, exitInvalidArgument)
	}
	// A signature by a key the server does not trust: refused too.
	otherKey, _ := testKey(t, t.TempDir())
	untrusted := filepath.Join(dir, "untrusted.sig")
	mustRunOffline(t, "firmware", "sign", "--key", otherKey, "--model", testFirmwareModel, "--version", "2.6.0", "--out", untrusted, image2)
	code, _, stderr = s.run(t, "firmware", "upload", "--model", testFirmwareModel, "--version", "2.6.0", "--sig", untrusted, image2)
	if code != exitInvalidArgument || !strings.Contains(stderr, "metadata.signature: ") {
		t.Errorf("upload signed by an untrusted key = %d, %q; want %d naming metadata.signature", code, stderr, exitInvalidArgument)
	}
	// The right signature, in base64 as openssl base64 writes it.
	mustRunOffline(t, "firmware", "sign", "--key", key, "--model", testFirmwareModel, "--version", "2.6.0", image2)
	raw, err := os.ReadFile(image2 + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	if err := os.WriteFile(image2+".sig.b64", []byte(b64[:64]+"\n"+b64[64:]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var a2 medfleetv1.Artifact
	s.mustJSON(t, &a2, "firmware", "upload", "--model", testFirmwareModel, "--version", "2.6.0", "--sig", image2+".sig.b64", image2)
	if a2.GetSha256() != sha2 || !bytes.Equal(a2.GetSignature(), raw) || a2.GetSigningKeyId() != keyID {
		t.Errorf("upload with a base64 signature = %v, want sha256 %s signed by %s", &a2, sha2, keyID)
	}

	// list, newest first; by model.
	var list medfleetv1.ListArtifactsResponse
	s.mustJSON(t, &list, "firmware", "list")
	if n := len(list.GetArtifacts()); n != 2 || list.GetArtifacts()[0].GetSha256() != sha2 || list.GetArtifacts()[1].GetSha256() != sha {
		t.Errorf("firmware list = %v, want 2.6.0 then 2.5.0", &list)
	}
	table := s.mustRun(t, "firmware", "list", "--model", testFirmwareModel)
	if !strings.Contains(table, sha[:12]+"  2.5.0") || !strings.HasSuffix(table, "\n2 artifacts\n") {
		t.Errorf("firmware list --model =\n%s\nwant %s and 2 artifacts", table, sha[:12])
	}
	if got := s.mustRun(t, "firmware", "list", "--model", "Other Pump"); got != "0 artifacts\n" {
		t.Errorf("firmware list --model Other Pump = %q, want 0 artifacts", got)
	}

	// get by sha256, resource name, prefix; -o json is the artifact.
	var want medfleetv1.Artifact
	s.mustJSON(t, &want, "firmware", "get", sha)
	for _, arg := range []string{"artifacts/" + sha, sha[:12], strings.ToUpper(sha[:8]), "artifacts/" + sha[:10]} {
		var got medfleetv1.Artifact
		s.mustJSON(t, &got, "firmware", "get", arg)
		if diff := cmp.Diff(&want, &got, protocmp.Transform()); diff != "" {
			t.Errorf("firmware get %s mismatch (-want +got):\n%s", arg, diff)
		}
	}
	absent := "00000000"
	if strings.HasPrefix(sha, absent) || strings.HasPrefix(sha2, absent) {
		absent = "ffffffff"
	}
	if code, _, stderr := s.run(t, "firmware", "get", absent); code != exitNotFound || !strings.Contains(stderr, "not found: no artifact's sha256 starts with "+absent) {
		t.Errorf("firmware get %s = %d, %q; want %d, not found", absent, code, stderr, exitNotFound)
	}
	if code, _, stderr := s.run(t, "firmware", "get", strings.Repeat("0", 64)); code != exitNotFound {
		t.Errorf("firmware get of an absent sha256 = %d, %q; want %d", code, stderr, exitNotFound)
	}

	// Policy: empty at first; set, read back, edit.
	out = s.mustRun(t, "firmware", "policy", "get", testFirmwareModel)
	if keyValue(t, out, "min version") != "none" || keyValue(t, out, "blocked") != "none" {
		t.Errorf("policy get of a model without a policy =\n%s\nwant none, none", out)
	}
	var p medfleetv1.FirmwarePolicy
	s.mustJSON(t, &p, "firmware", "policy", "set", testFirmwareModel, "--min-version", "2.0.0",
		"--block", "2.4.0", "--reason", "recall FSN-2026-004", "--block", "2.7.0", "--reason", "advisory 7")
	wantPolicy := &medfleetv1.FirmwarePolicy{Model: testFirmwareModel, MinVersion: "2.0.0", BlockedVersions: []*medfleetv1.BlockedVersion{
		{Version: "2.4.0", Reason: "recall FSN-2026-004"}, {Version: "2.7.0", Reason: "advisory 7"},
	}}
	ignore := protocmp.IgnoreFields(&medfleetv1.FirmwarePolicy{}, "etag", "update_time")
	if diff := cmp.Diff(wantPolicy, &p, protocmp.Transform(), ignore); diff != "" {
		t.Errorf("policy set mismatch (-want +got):\n%s", diff)
	}
	var got medfleetv1.FirmwarePolicy
	s.mustJSON(t, &got, "firmware", "policy", "get", testFirmwareModel)
	if diff := cmp.Diff(&p, &got, protocmp.Transform()); diff != "" {
		t.Errorf("policy get after set mismatch (-want +got):\n%s", diff)
	}

	// A blocked version is refused at upload: failed precondition.
	image3, _ := testImage(t, dir, "pump-2.7.0.bin", 1000)
	mustRunOffline(t, "firmware", "sign", "--key", key, "--model", testFirmwareModel, "--version", "2.7.0", image3)
	code, _, stderr = s.run(t, "firmware", "upload", "--model", testFirmwareModel, "--version", "2.7.0", "--sig", image3+".sig", image3)
	if code != exitFailedPrecondition || !strings.Contains(stderr, "blocked") {
		t.Errorf("upload of a blocked version = %d, %q; want %d, blocked", code, stderr, exitFailedPrecondition)
	}

	out = s.mustRun(t, "firmware", "policy", "set", testFirmwareModel, "--unblock", "2.4.0", "--block", "2.7.0", "--reason", "recall FSN-2026-009")
	if b := keyValue(t, out, "blocked"); b != "2.7.0: recall FSN-2026-009" || strings.Contains(out, "2.4.0") {
		t.Errorf("policy set --unblock 2.4.0 --block 2.7.0 =\n%s\nwant only 2.7.0 blocked, with its new reason", out)
	}
	out = s.mustRun(t, "firmware", "policy", "set", testFirmwareModel, "--min-version", "")
	if keyValue(t, out, "min version") != "none" || keyValue(t, out, "blocked") != "2.7.0: recall FSN-2026-009" {
		t.Errorf("policy set --min-version \"\" =\n%s\nwant no floor and the block kept", out)
	}
	list2 := s.mustRun(t, "firmware", "policy", "list")
	if lines := strings.Split(strings.TrimSuffix(list2, "\n"), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], testFirmwareModel+"  ") || lines[2] != "1 policy" {
		t.Errorf("policy list =\n%s\nwant a header, %s and 1 policy", list2, testFirmwareModel)
	}

	// delete, then it is gone.
	if got := s.mustRun(t, "firmware", "delete", "artifacts/"+sha2); got != "deleted artifacts/"+sha2+"\n" {
		t.Errorf("firmware delete = %q, want deleted artifacts/%s", got, sha2)
	}
	if code, _, _ := s.run(t, "firmware", "get", sha2); code != exitNotFound {
		t.Errorf("firmware get after delete = %d, want %d", code, exitNotFound)
	}
	if code, _, _ := s.run(t, "firmware", "delete", sha2); code != exitNotFound {
		t.Errorf("firmware delete again = %d, want %d", code, exitNotFound)
	}
}

// TestFirmwareUntrustingServer: a server without trusted keys refuses
// every upload, naming the signature and the setting.
func TestFirmwareUntrustingServer(t *testing.T) {
	dir := t.TempDir()
	key, _ := testKey(t, dir)
	s := startServer(t)
	image, _ := testImage(t, dir, "pump.bin", 1000)
	mustRunOffline(t, "firmware", "sign", "--key", key, "--model", testFirmwareModel, "--version", "2.5.0", image)
	code, _, stderr := s.run(t, "firmware", "upload", "--model", testFirmwareModel, "--version", "2.5.0", "--sig", image+".sig", image)
	if code != exitInvalidArgument || !strings.Contains(stderr, "metadata.signature: ") || !strings.Contains(stderr, "firmware.trusted_keys") {
		t.Errorf("upload to a server that trusts no key = %d, %q; want %d naming metadata.signature", code, stderr, exitInvalidArgument)
	}
}

// FuzzDecodeSignature: whatever a signature file holds, decodeSignature
// returns a 64-byte signature or an error.
func FuzzDecodeSignature(f *testing.F) {
	sig := make([]byte, ed25519.SignatureSize)
	f.Add(sig)
	f.Add([]byte(base64.StdEncoding.EncodeToString(sig) + "\n"))
	f.Add([]byte(base64.RawURLEncoding.EncodeToString(sig)))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeSignature(data)
		if err == nil && len(got) != ed25519.SignatureSize {
			t.Errorf("decodeSignature(%q) = %d bytes and no error, want %d", data, len(got), ed25519.SignatureSize)
		}
	})
}
