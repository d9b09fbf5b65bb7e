package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/firmware/manifest"
	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// artifactsPrefix is the collection part of an artifact's resource name.
const artifactsPrefix = "artifacts/"

// uploadChunk is the size of the chunks an image is streamed in; the
// server takes up to 1 MiB a message.
const uploadChunk = 256 << 10

// minArtifactPrefix is the shortest sha256 prefix that names an artifact.
const minArtifactPrefix = 8

// artifactHexPattern is a whole sha256 or a prefix of one.
var artifactHexPattern = regexp.MustCompile(`^[0-9a-f]{8,64}$`)

// parseArtifactArg accepts a sha256 ("9f86d0..."), a resource name
// ("artifacts/9f86d0...") or a prefix of at least 8 hex digits of either,
// in either case. It returns the hex digits in lower case, and whether they
// are the whole sha256.
func parseArtifactArg(arg string) (digits string, whole bool, err error) {
	digits = strings.ToLower(strings.TrimPrefix(arg, artifactsPrefix))
	if !artifactHexPattern.MatchString(digits) {
		return "", false, fmt.Errorf("artifact %q: want its sha256 (64 hex digits, or a unique prefix of at least %d), or artifacts/{sha256}", arg, minArtifactPrefix)
	}
	return digits, len(digits) == 64, nil
}

// withFirmwareClient dials the server, runs fn and closes the connection.
func (c *cli) withFirmwareClient(ctx context.Context, fn func(medfleetv1.FirmwareServiceClient) error) error {
	return c.withConn(ctx, func(conn *grpc.ClientConn) error {
		return fn(medfleetv1.NewFirmwareServiceClient(conn))
	})
}

// listArtifacts lists every artifact, of one model or of all.
func (c *cli) listArtifacts(ctx context.Context, client medfleetv1.FirmwareServiceClient, model string) ([]*medfleetv1.Artifact, error) {
	return allPages(ctx, c, "list artifacts", func(ctx context.Context, token string) ([]*medfleetv1.Artifact, string, error) {
		resp, err := client.ListArtifacts(ctx, &medfleetv1.ListArtifactsRequest{Model: model, PageToken: token})
		return resp.GetArtifacts(), resp.GetNextPageToken(), err
	})
}

// matchArtifact finds the one artifact whose sha256 starts with prefix.
// None is NotFound; more than one is a usage error listing them.
func matchArtifact(cmd *cobra.Command, artifacts []*medfleetv1.Artifact, prefix string) (*medfleetv1.Artifact, error) {
	var found []*medfleetv1.Artifact
	for _, a := range artifacts {
		if strings.HasPrefix(a.GetSha256(), prefix) {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return nil, status.Errorf(codes.NotFound, "no artifact's sha256 starts with %s", prefix)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, a := range found {
		names[i] = a.GetSha256() + " (" + cell(a.GetVersion()) + ")"
	}
	return nil, usageErrorf(cmd, "artifact %s: %d artifacts start with it, give more digits: %s", prefix, len(found), strings.Join(names, ", "))
}

// resolveArtifactName turns an artifact argument into its resource name; a
// prefix is looked up by listing the artifacts.
func (c *cli) resolveArtifactName(cmd *cobra.Command, client medfleetv1.FirmwareServiceClient, digits string, whole bool) (string, error) {
	if whole {
		return artifactsPrefix + digits, nil
	}
	all, err := c.listArtifacts(cmd.Context(), client, "")
	if err != nil {
		return "", err
	}
	a, err := matchArtifact(cmd, all, digits)
	if err != nil {
		return "", err
	}
	return a.GetName(), nil
}

const firmwareLong = `Signed firmware images (artifacts) and the per-model policies that keep
recalled or outdated versions off devices.

An image is accepted only with an ed25519 signature, by a key the server
trusts (firmware.trusted_keys in medfleetd's configuration), over its
manifest: five lines of text naming the models, the version, the image's
SHA-256 and size ("firmware manifest" prints them). A maker signs with its
own tools or with "firmware sign"; "firmware keygen" makes a key for sites
without their own PKI.

Artifacts are named by their SHA-256, by a unique prefix of at least 8 of its
hex digits, or by their resource name, as in "artifacts/9f86d081...".
"rollout create" installs an artifact on devices.`

func (c *cli) firmwareCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "firmware",
		Short: "Sign, upload and list firmware images; recall versions by policy",
		Long:  firmwareLong,
		Args:  subcommandArgs,
		RunE:  missingSubcommand,
	}
	cmd.AddCommand(
		c.firmwareKeygenCommand(),
		c.firmwareManifestCommand(),
		c.firmwareSignCommand(),
		c.firmwareUploadCommand(),
		c.firmwareListCommand(),
		c.firmwareGetCommand(),
		c.firmwareDeleteCommand(),
		c.firmwarePolicyCommand(),
	)
	return cmd
}

// keygenFiles is what "firmware keygen" made, as -o json writes it.
type keygenFiles struct {
	PrivateKey string `json:"private_key_file"`
	PublicKey  string `json:"public_key_file"`
	KeyID      string `json:"key_id"`
}

const firmwareKeygenLong = `Make an ed25519 signing key for firmware manifests, for sites without their
own PKI. The private key goes to --out (PKCS #8 PEM, mode 0600) and the
public key to --pub (PEM, mode 0644), by default the --out file with the
extension .pub. Neither file is replaced if it exists: a signing key is not
made twice by accident.

Give the public key to medfleetd (firmware.trusted_keys; one file may hold
several keys) and keep the private key off the server. The key id printed is
the one artifacts show as "signed by".

openssl makes the same keys:
  openssl genpkey -algorithm ed25519 -out signing.key
  openssl pkey -in signing.key -pubout -out signing.pub`

func (c *cli) firmwareKeygenCommand() *cobra.Command {
	var out, pub string
	cmd := &cobra.Command{
		Use:     "keygen --out FILE [--pub FILE]",
		Short:   "Make an ed25519 firmware signing key",
		Long:    firmwareKeygenLong,
		Example: `  medfleetctl firmware keygen --out signing.key`,
		Args:    exactArgs(0, "no arguments (the key file is given by --out)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf(cmd, "--out: required, the private key file")
			}
			if pub == "" {
				pub = publicKeyPath(out)
			}
			if filepath.Clean(pub) == filepath.Clean(out) {
				return usageErrorf(cmd, "--pub %q: the same file as --out", pub)
			}
			keyFile, err := createNewFile("--out", out, 0o600)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			defer keyFile.abort()
			pubFile, err := createNewFile("--pub", pub, 0o644)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			defer pubFile.abort()

			pk, sk, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			if err := keyFile.commit(manifest.MarshalPrivateKey(sk)); err != nil {
				return err
			}
			if err := pubFile.commit(manifest.MarshalPublicKey(pk)); err != nil {
				return err
			}
			files := keygenFiles{PrivateKey: out, PublicKey: pub, KeyID: manifest.KeyID(pk)}
			if c.flags.output == "json" {
				return writeJSONValue(c.stdout, files)
			}
			return writeKeyValues(c.stdout, [][2]string{
				{"private key", cell(files.PrivateKey)},
				{"public key", cell(files.PublicKey)},
				{"key id", files.KeyID},
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the private key to this file")
	cmd.Flags().StringVar(&pub, "pub", "", "write the public key to this file (default: --out with the extension .pub)")
	return cmd
}

// publicKeyPath is where keygen writes the public key of the private key
// file path: its extension replaced by .pub ("signing.key" ->
// "signing.pub"), or .pub added.
func publicKeyPath(path string) string {
	ext := filepath.Ext(path)
	if ext == ".pub" || ext == filepath.Base(path) {
		return path + ".pub"
	}
	return strings.TrimSuffix(path, ext) + ".pub"
}

// createNewFile is createOutFile for files that are never replaced: one
// that exists is refused, and there is no --force.
func createNewFile(flag, path string, mode fs.FileMode) (*outFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%s %q: the file exists; a key is never replaced, remove it first or choose another file", flag, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", flag, path, unwrapPath(err))
	}
	o := &outFile{flag: flag, path: path, f: f}
	// Exactly mode, whatever the umask.
	if err := f.Chmod(mode); err != nil {
		o.abort()
		return nil, fmt.Errorf("%s %q: %w", flag, path, unwrapPath(err))
	}
	return o, nil
}

// manifestFlags are the flags that say what an image is for.
type manifestFlags struct {
	models  []string
	version string
}

func (f *manifestFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.models, "model", nil, "a device `model` the image is for, as devices register it (repeatable)")
	cmd.Flags().StringVar(&f.version, "version", "", "the version the image installs")
}

// manifest reads the image at path and returns its manifest. Every error
// is a usage error naming the flag or the file.
func (f *manifestFlags) manifest(cmd *cobra.Command, path string) (manifest.Manifest, error) {
	if len(f.models) == 0 {
		return manifest.Manifest{}, usageErrorf(cmd, "--model: required, the device models the image is for")
	}
	if f.version == "" {
		return manifest.Manifest{}, usageErrorf(cmd, "--version: required, the version the image installs")
	}
	m, err := fileManifest(path, f.models, f.version)
	if err != nil {
		return manifest.Manifest{}, usageError{cmd: cmd.CommandPath(), err: err}
	}
	return m, nil
}

// fileManifest hashes the image at path and returns its manifest, checked.
// The errors name the flag of a bad model or version, or the file.
func fileManifest(path string, models []string, version string) (manifest.Manifest, error) {
	sha, size, err := hashFile(path)
	if err != nil {
		return manifest.Manifest{}, err
	}
	m := manifest.Manifest{Models: models, Version: version, SHA256: sha, Size: uint64(size)}
	if err := m.Validate(); err != nil {
		var fe *manifest.FieldError
		if !errors.As(err, &fe) {
			return manifest.Manifest{}, err
		}
		switch fe.Field {
		case "models":
			return manifest.Manifest{}, fmt.Errorf("--model: %v", fe.Err)
		case "version":
			return manifest.Manifest{}, fmt.Errorf("--version: %v", fe.Err)
		case "size":
			return manifest.Manifest{}, fmt.Errorf("%s: the file is empty", path)
		default:
			return manifest.Manifest{}, fmt.Errorf("%s: %v", path, err)
		}
	}
	return m, nil
}

// hashFile returns the SHA-256, in hex, and the size of a file.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

const firmwareManifestLong = `Print the manifest of an image: the exact bytes a firmware signature covers,
five lines of text naming the models, the version, the SHA-256 and the size.
A maker who signs with its own tools signs these bytes; with openssl:

  medfleetctl firmware manifest --model "Test Pump 100" --version 2.5.0 pump-2.5.0.bin > manifest
  openssl pkeyutl -sign -rawin -inkey signing.key -in manifest -out pump-2.5.0.bin.sig

With -o json the output holds the fields and the canonical text.`

func (c *cli) firmwareManifestCommand() *cobra.Command {
	var mf manifestFlags
	cmd := &cobra.Command{
		Use:   "manifest --model M [--model M2] --version V FILE",
		Short: "Print the canonical manifest of an image, the bytes a signature covers",
		Long:  firmwareManifestLong,
		Args:  exactArgs(1, "one image file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := mf.manifest(cmd, args[0])
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSONValue(c.stdout, manifestJSON(m))
			}
			_, err = c.stdout.Write(m.Bytes())
			return err
		},
	}
	mf.add(cmd)
	return cmd
}

// manifestJSON is a manifest as -o json writes it.
func manifestJSON(m manifest.Manifest) any {
	models := slices.Clone(m.Models)
	slices.Sort(models)
	return struct {
		Models    []string `json:"models"`
		Version   string   `json:"version"`
		SHA256    string   `json:"sha256"`
		Size      uint64   `json:"size_bytes"`
		Canonical string   `json:"canonical"`
	}{slices.Compact(models), m.Version, m.SHA256, m.Size, string(m.Bytes())}
}

const firmwareSignLong = `Sign the manifest of an image with an ed25519 private key (PKCS #8 PEM, as
"firmware keygen" and "openssl genpkey -algorithm ed25519" write it). The
raw 64-byte signature goes to --out, by default the image's file name with
.sig added; an existing file is not replaced unless --force.

The signature covers the models, the version and the image's bytes: upload
with the same --model and --version flags.`

func (c *cli) firmwareSignCommand() *cobra.Command {
	var (
		mf       manifestFlags
		key, out string
		force    bool
	)
	cmd := &cobra.Command{
		Use:     "sign --key FILE --model M [--model M2] --version V [--out FILE.sig] FILE",
		Short:   "Sign an image's manifest",
		Long:    firmwareSignLong,
		Example: `  medfleetctl firmware sign --key signing.key --model "Test Pump 100" --version 2.5.0 pump-2.5.0.bin`,
		Args:    exactArgs(1, "one image file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return usageErrorf(cmd, "--key: required, the private key file")
			}
			pemBytes, err := os.ReadFile(key)
			if err != nil {
				return usageErrorf(cmd, "--key %q: %v", key, unwrapPath(err))
			}
			sk, err := manifest.ParsePrivateKey(pemBytes)
			if err != nil {
				return usageErrorf(cmd, "--key %q: %v", key, strings.TrimPrefix(err.Error(), "manifest: "))
			}
			m, err := mf.manifest(cmd, args[0])
			if err != nil {
				return err
			}
			if out == "" {
				out = args[0] + ".sig"
			}
			sigFile, err := createOutFile("--out", out, 0o644, force)
			if err != nil {
				return err
			}
			defer sigFile.abort()
			if err := sigFile.commit(manifest.Sign(sk, m)); err != nil {
				return err
			}
			keyID := manifest.KeyID(sk.Public().(ed25519.PublicKey))
			if c.flags.output == "json" {
				return writeJSONValue(c.stdout, map[string]string{"signature_file": out, "key_id": keyID, "sha256": m.SHA256})
			}
			return writeKeyValues(c.stdout, [][2]string{
				{"signature", cell(out)},
				{"key id", keyID},
				{"sha256", m.SHA256},
			})
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the ed25519 private key, PEM")
	mf.add(cmd)
	cmd.Flags().StringVar(&out, "out", "", "write the signature to this file (default: FILE.sig)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing signature file")
	return cmd
}

// decodeSignature reads an ed25519 signature from a file's contents: the
// raw 64 bytes (openssl pkeyutl -sign, "firmware sign"), or base64 text,
// which may be wrapped (openssl base64) and may lack its padding.
func decodeSignature(data []byte) ([]byte, error) {
	if len(data) == ed25519.SignatureSize {
		return data, nil
	}
	text := strings.Join(strings.Fields(string(data)), "")
	if text == "" {
		return nil, errors.New("empty; want a 64-byte ed25519 signature, raw or base64")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		sig, err := enc.DecodeString(text)
		if err != nil {
			continue
		}
		if len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("base64 of %d bytes; an ed25519 signature has %d", len(sig), ed25519.SignatureSize)
		}
		return sig, nil
	}
	return nil, fmt.Errorf("%d bytes that are neither a raw ed25519 signature (%d bytes) nor base64", len(data), ed25519.SignatureSize)
}

const firmwareUploadLong = `Upload a signed image. The image is streamed in chunks of 256 KiB with its
SHA-256, computed here, which the server checks against the bytes it
received. The server refuses the image (exit code 5, naming the field)
unless the signature (--sig) verifies with a trusted key over the manifest
of these bytes, --model and --version; and refuses it (exit code 6) when the
version is blocked or below the minimum of one of its models' policies, or
(exit code 4) when the version of one of the models is already uploaded.

The signature file holds the raw 64 bytes ("firmware sign", "openssl pkeyutl
-sign") or their base64 ("openssl base64").

The upload's deadline is --timeout when given, else 10s plus 1s per MiB of
the image.`

func (c *cli) firmwareUploadCommand() *cobra.Command {
	var (
		mf             manifestFlags
		sigPath, descr string
	)
	cmd := &cobra.Command{
		Use:   "upload --model M [--model M2] --version V --sig FILE.sig [--description D] FILE",
		Short: "Upload a signed firmware image",
		Long:  firmwareUploadLong,
		Example: `  medfleetctl firmware upload --model "Test Pump 100" --version 2.5.0 --sig pump-2.5.0.bin.sig \
    --description "fixes occlusion alarm latency (FSN-2026-004)" pump-2.5.0.bin`,
		Args: exactArgs(1, "one image file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sigPath == "" {
				return usageErrorf(cmd, "--sig: required, the signature file")
			}
			raw, err := os.ReadFile(sigPath)
			if err != nil {
				return usageErrorf(cmd, "--sig %q: %v", sigPath, unwrapPath(err))
			}
			sig, err := decodeSignature(raw)
			if err != nil {
				return usageErrorf(cmd, "--sig %q: %v", sigPath, err)
			}
			m, err := mf.manifest(cmd, args[0])
			if err != nil {
				return err
			}
			timeout := c.flags.timeout
			if !cmd.Flags().Changed("timeout") {
				timeout = uploadTimeout(int64(m.Size))
			}
			meta := &medfleetv1.ArtifactUpload{
				Version:     m.Version,
				Models:      mf.models,
				Signature:   sig,
				Sha256:      m.SHA256,
				Description: descr,
			}
			return c.withFirmwareClient(cmd.Context(), func(client medfleetv1.FirmwareServiceClient) error {
				rctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				a, err := uploadArtifact(rctx, client, meta, args[0])
				if err != nil {
					return err
				}
				return c.printArtifact(a)
			})
		},
	}
	mf.add(cmd)
	cmd.Flags().StringVar(&sigPath, "sig", "", "the signature file: 64 raw bytes or base64")
	cmd.Flags().StringVar(&descr, "description", "", "what the version changes, for people")
	return cmd
}

// uploadTimeout is the deadline of an upload without --timeout: the
// default plus a second per MiB.
func uploadTimeout(size int64) time.Duration {
	return defaultTimeout + time.Duration(size>>20)*time.Second
}

// uploadArtifact streams the metadata, then the file at path in chunks of
// uploadChunk bytes, and returns the artifact the server made.
func uploadArtifact(ctx context.Context, client medfleetv1.FirmwareServiceClient, meta *medfleetv1.ArtifactUpload, path string) (*medfleetv1.Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	stream, err := client.UploadArtifact(ctx)
	if err != nil {
		return nil, err
	}
	err = stream.Send(&medfleetv1.UploadArtifactRequest{Content: &medfleetv1.UploadArtifactRequest_Metadata{Metadata: meta}})
	for err == nil {
		// A buffer per message: gRPC may still hold the previous one.
		buf := make([]byte, uploadChunk)
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			err = stream.Send(&medfleetv1.UploadArtifactRequest{Content: &medfleetv1.UploadArtifactRequest_Chunk{Chunk: buf[:n]}})
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("%s: %w", path, unwrapPath(rerr))
		}
	}
	// io.EOF from Send: the server ended the call early; CloseAndRecv says
	// why.
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return stream.CloseAndRecv()
}

// printArtifact writes an artifact in the chosen output format.
func (c *cli) printArtifact(a *medfleetv1.Artifact) error {
	if c.flags.output == "json" {
		return writeJSON(c.stdout, a)
	}
	return writeArtifact(c.stdout, a, c.now())
}

func (c *cli) firmwareListCommand() *cobra.Command {
	var model string
	cmd := &cobra.Command{
		Use:   "list [--model M]",
		Short: "List firmware images, newest first",
		Long: `List firmware images, newest first, of every model or of one (--model). The
ARTIFACT column shows the first 12 digits of the SHA-256, which the other
commands accept. With -o json the output is one ListArtifactsResponse
holding them all.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var artifacts []*medfleetv1.Artifact
			err := c.withFirmwareClient(cmd.Context(), func(client medfleetv1.FirmwareServiceClient) error {
				var err error
				artifacts, err = c.listArtifacts(cmd.Context(), client, model)
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, &medfleetv1.ListArtifactsResponse{Artifacts: artifacts})
			}
			return writeArtifactTable(c.stdout, artifacts, c.now())
		},
	}
	cmd.Flags().StringVar(&model, "model", "", "only images for this device model")
	return cmd
}

func (c *cli) firmwareGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get SHA256",
		Short: "Show a firmware image",
		Long: `Show a firmware image. It is named by its SHA-256, by a unique prefix of at
least 8 hex digits (looked up by listing the images), or as
artifacts/{sha256}.`,
		Example: `  medfleetctl firmware get 9f86d081884c
  medfleetctl firmware get artifacts/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 -o json`,
		Args: exactArgs(1, "one artifact"),
		RunE: func(cmd *cobra.Command, args []string) error {
			digits, whole, err := parseArtifactArg(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withFirmwareClient(cmd.Context(), func(client medfleetv1.FirmwareServiceClient) error {
				var a *medfleetv1.Artifact
				if whole {
					rctx, cancel := c.rpcContext(cmd.Context())
					defer cancel()
					a, err = client.GetArtifact(rctx, &medfleetv1.GetArtifactRequest{Name: artifactsPrefix + digits})
				} else {
					var all []*medfleetv1.Artifact
					if all, err = c.listArtifacts(cmd.Context(), client, ""); err == nil {
						a, err = matchArtifact(cmd, all, digits)
					}
				}
				if err != nil {
					return err
				}
				return c.printArtifact(a)
			})
		},
	}
}

func (c *cli) firmwareDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete SHA256",
		Short: "Delete a firmware image",
		Long: `Delete a firmware image and its bytes. The image is named by its whole
SHA-256 or as artifacts/{sha256}: no prefix, for a deletion. The server
refuses (exit code 6) while an unfinished rollout installs the image; abort
the rollout first. With -o json the output is the empty response, {}.`,
		Args: exactArgs(1, "one artifact"),
		RunE: func(cmd *cobra.Command, args []string) error {
			digits, whole, err := parseArtifactArg(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if !whole {
				return usageErrorf(cmd, "artifact %q: want the whole sha256 to delete (firmware get %s shows it)", args[0], digits)
			}
			name := artifactsPrefix + digits
			return c.withFirmwareClient(cmd.Context(), func(client medfleetv1.FirmwareServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				resp, err := client.DeleteArtifact(rctx, &medfleetv1.DeleteArtifactRequest{Name: name})
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, resp)
				}
				_, err = fmt.Fprintln(c.stdout, "deleted "+name)
				return err
			})
		},
	}
}

func (c *cli) firmwarePolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "policy",
		Aliases: []string{"policies"},
		Short:   "Show and change the firmware policies of device models",
		Long: `A model's firmware policy holds a minimum version, below which nothing is
uploaded or rolled out and devices are out of policy, and blocked versions
(recalls), each with its reason. Blocking the version of an unfinished
rollout pauses that rollout for good: it can only be aborted.

Models are named as devices register them, as in "Test Pump 100"; a model
without a policy has an empty one.`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(c.firmwarePolicyGetCommand(), c.firmwarePolicySetCommand(), c.firmwarePolicyListCommand())
	return cmd
}

// printPolicy writes a policy in the chosen output format.
func (c *cli) printPolicy(p *medfleetv1.FirmwarePolicy) error {
	if c.flags.output == "json" {
		return writeJSON(c.stdout, p)
	}
	return writePolicy(c.stdout, p, c.now())
}

// modelArg checks a model argument: devices' model strings are free text,
// but not empty.
func modelArg(cmd *cobra.Command, arg string) (string, error) {
	if strings.TrimSpace(arg) == "" {
		return "", usageErrorf(cmd, "%swant a device model, got %q", subPath(cmd), arg)
	}
	return arg, nil
}

func (c *cli) firmwarePolicyGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "get MODEL",
		Short:   "Show a model's firmware policy",
		Example: `  medfleetctl firmware policy get "Test Pump 100"`,
		Args:    exactArgs(1, "one device model"),
		RunE: func(cmd *cobra.Command, args []string) error {
			model, err := modelArg(cmd, args[0])
			if err != nil {
				return err
			}
			return c.withFirmwareClient(cmd.Context(), func(client medfleetv1.FirmwareServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				p, err := client.GetFirmwarePolicy(rctx, &medfleetv1.GetFirmwarePolicyRequest{Model: model})
				if err != nil {
					return err
				}
				return c.printPolicy(p)
			})
		},
	}
}

const firmwarePolicySetLong = `Change a model's firmware policy: the fields given by flags and no others.

--min-version sets the floor; --min-version "" removes it. --block blocks a
version (a recall), with the --reason of the same position: give one
--reason per --block, or one --reason for every --block. Blocking a version
already blocked replaces its reason. --unblock lifts a block; a version that
is not blocked is left as it is.

The command reads the policy, applies the changes and writes it back,
guarded by the etag it read, so that a concurrent change fails with
"aborted" (exit code 6) instead of being lost.`

// policyChanges are the flags of "firmware policy set".
type policyChanges struct {
	minVersion *string // nil: unchanged
	block      []*medfleetv1.BlockedVersion
	unblock    []string
}

func (c *cli) firmwarePolicySetCommand() *cobra.Command {
	var (
		minVersion              string
		blocks, reasons, unblks []string
	)
	cmd := &cobra.Command{
		Use:   "set MODEL [--min-version V] [--block V --reason R]... [--unblock V]...",
		Short: "Change a model's firmware policy: floor, recalls",
		Long:  firmwarePolicySetLong,
		Example: `  medfleetctl firmware policy set "Test Pump 100" --min-version 2.0.0
  medfleetctl firmware policy set "Test Pump 100" --block 2.4.0 --reason "recall FSN-2026-004"
  medfleetctl firmware policy set "Test Pump 100" --unblock 2.4.0`,
		Args: exactArgs(1, "one device model"),
		RunE: func(cmd *cobra.Command, args []string) error {
			model, err := modelArg(cmd, args[0])
			if err != nil {
				return err
			}
			var ch policyChanges
			if cmd.Flags().Changed("min-version") {
				ch.minVersion = &minVersion
			}
			if ch.block, err = blockedVersions(blocks, reasons); err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			ch.unblock = unblks
			if err := ch.check(); err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withFirmwareClient(cmd.Context(), func(client medfleetv1.FirmwareServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				cur, err := client.GetFirmwarePolicy(rctx, &medfleetv1.GetFirmwarePolicyRequest{Model: model})
				cancel()
				if err != nil {
					return err
				}
				rctx, cancel = c.rpcContext(cmd.Context())
				defer cancel()
				p, err := client.UpdateFirmwarePolicy(rctx, &medfleetv1.UpdateFirmwarePolicyRequest{Policy: ch.apply(cur)})
				if err != nil {
					return err
				}
				return c.printPolicy(p)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&minVersion, "min-version", "", `the lowest version allowed; "" removes the floor`)
	fl.StringArrayVar(&blocks, "block", nil, "block this `version` (repeatable; each needs a --reason)")
	fl.StringArrayVar(&reasons, "reason", nil, "why the --block of the same position: a recall number, an advisory")
	fl.StringArrayVar(&unblks, "unblock", nil, "lift the block of this `version` (repeatable)")
	return cmd
}

// blockedVersions pairs --block with --reason: one reason each, in order,
// or one for all.
func blockedVersions(versions, reasons []string) ([]*medfleetv1.BlockedVersion, error) {
	switch {
	case len(versions) == 0 && len(reasons) > 0:
		return nil, errors.New("--reason: only with --block")
	case len(versions) == 0:
		return nil, nil
	case len(reasons) == 0:
		return nil, errors.New("--block: needs a --reason, a recall number or an advisory")
	case len(reasons) != 1 && len(reasons) != len(versions):
		return nil, fmt.Errorf("--reason: given %d times for %d --block; give one for each, or one for all", len(reasons), len(versions))
	}
	out := make([]*medfleetv1.BlockedVersion, len(versions))
	for i, v := range versions {
		r := reasons[0]
		if len(reasons) > 1 {
			r = reasons[i]
		}
		if strings.TrimSpace(r) == "" {
			return nil, fmt.Errorf("--reason: empty for --block %s", v)
		}
		out[i] = &medfleetv1.BlockedVersion{Version: v, Reason: r}
	}
	return out, nil
}

// check refuses changes that cannot be meant: nothing, a version that is
// not one, a version both blocked and unblocked or blocked twice.
func (ch policyChanges) check() error {
	if ch.minVersion == nil && len(ch.block) == 0 && len(ch.unblock) == 0 {
		return errors.New("nothing to change: give --min-version, --block or --unblock")
	}
	if ch.minVersion != nil && *ch.minVersion != "" {
		if err := manifest.ValidateVersion(*ch.minVersion); err != nil {
			return fmt.Errorf("--min-version: %v", err)
		}
	}
	seen := map[string]string{}
	for _, b := range ch.block {
		if err := manifest.ValidateVersion(b.GetVersion()); err != nil {
			return fmt.Errorf("--block: %v", err)
		}
		if seen[b.GetVersion()] != "" {
			return fmt.Errorf("--block %s: given twice", b.GetVersion())
		}
		seen[b.GetVersion()] = "--block"
	}
	for _, v := range ch.unblock {
		if err := manifest.ValidateVersion(v); err != nil {
			return fmt.Errorf("--unblock: %v", err)
		}
		if seen[v] != "" {
			return fmt.Errorf("version %s: both --block and --unblock", v)
		}
		seen[v] = "--unblock"
	}
	return nil
}

// apply returns the policy cur with the changes made, and cur's etag to
// guard the write with. Blocked versions keep their order; new ones go
// last.
func (ch policyChanges) apply(cur *medfleetv1.FirmwarePolicy) *medfleetv1.FirmwarePolicy {
	p := &medfleetv1.FirmwarePolicy{Model: cur.GetModel(), MinVersion: cur.GetMinVersion(), Etag: cur.GetEtag()}
	if ch.minVersion != nil {
		p.MinVersion = *ch.minVersion
	}
	reasons := map[string]string{}
	for _, b := range ch.block {
		reasons[b.GetVersion()] = b.GetReason()
	}
	for _, b := range cur.GetBlockedVersions() {
		v := b.GetVersion()
		switch r, reblock := reasons[v]; {
		case slices.Contains(ch.unblock, v):
		case reblock:
			p.BlockedVersions = append(p.BlockedVersions, &medfleetv1.BlockedVersion{Version: v, Reason: r})
			delete(reasons, v)
		default:
			p.BlockedVersions = append(p.BlockedVersions, &medfleetv1.BlockedVersion{Version: v, Reason: b.GetReason()})
		}
	}
	for _, b := range ch.block {
		if _, fresh := reasons[b.GetVersion()]; fresh {
			p.BlockedVersions = append(p.BlockedVersions, &medfleetv1.BlockedVersion{Version: b.GetVersion(), Reason: b.GetReason()})
		}
	}
	return p
}

func (c *cli) firmwarePolicyListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the models that have a firmware policy",
		Long: `List every model that has a firmware policy, by model. With -o json the
output is the ListFirmwarePoliciesResponse.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withFirmwareClient(cmd.Context(), func(client medfleetv1.FirmwareServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				resp, err := client.ListFirmwarePolicies(rctx, &medfleetv1.ListFirmwarePoliciesRequest{})
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, resp)
				}
				return writePolicyTable(c.stdout, resp.GetPolicies(), c.now())
			})
		},
	}
}

// shortSHA is the first 12 digits of a sha256, as the tables show it.
func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return cell(sha)
}

// byteSize is a size in bytes in its largest binary unit: "812 B",
// "4.0 MiB".
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}

// modelsCell is the models of an artifact, sorted and joined.
func modelsCell(models []string) string {
	return cell(strings.Join(cellEach(models), ", "))
}

// writeArtifactTable writes artifacts as a table with a count.
func writeArtifactTable(w io.Writer, artifacts []*medfleetv1.Artifact, now time.Time) error {
	if len(artifacts) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ARTIFACT\tVERSION\tMODELS\tSIZE\tSIGNED BY\tCREATED\tROLLOUTS")
		for _, a := range artifacts {
			rollouts := "-"
			if n := len(a.GetActiveRollouts()); n > 0 {
				rollouts = strconv.Itoa(n)
			}
			fmt.Fprintln(tw, strings.Join([]string{
				shortSHA(a.GetSha256()),
				cell(a.GetVersion()),
				modelsCell(a.GetModels()),
				byteSize(a.GetSizeBytes()),
				cell(a.GetSigningKeyId()),
				lastSeen(a.GetCreateTime(), now),
				rollouts,
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, countNoun(len(artifacts), "artifact"))
	return err
}

// writeArtifact writes an artifact as "key: value" lines.
func writeArtifact(w io.Writer, a *medfleetv1.Artifact, now time.Time) error {
	created := timeAndAge(a.GetCreateTime(), now, "-")
	if a.GetCreator() != "" {
		created += " by " + cell(a.GetCreator())
	}
	return writeKeyValueLines(w, []keyValues{
		{"name", []string{cell(a.GetName())}},
		{"version", []string{cell(a.GetVersion())}},
		{"models", cellEach(a.GetModels())},
		{"size", []string{fmt.Sprintf("%s (%d bytes)", byteSize(a.GetSizeBytes()), a.GetSizeBytes())}},
		{"sha256", []string{cell(a.GetSha256())}},
		{"signed by", []string{"key " + cell(a.GetSigningKeyId())}},
		{"description", []string{cell(oneLine(a.GetDescription()))}},
		{"created", []string{created}},
		{"rollouts", cellEach(a.GetActiveRollouts())},
	})
}

// cellEach is cell of every string; none is one "-".
func cellEach(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = cell(s)
	}
	return out
}

// keyValues is a key and its values, one a line.
type keyValues struct {
	key    string
	values []string
}

// writeKeyValueLines is writeKeyValues with several values to a key, one a
// line, aligned; a key without values shows "-".
func writeKeyValueLines(w io.Writer, kvs []keyValues) error {
	width := 0
	for _, kv := range kvs {
		width = max(width, len(kv.key)+2)
	}
	var b strings.Builder
	for _, kv := range kvs {
		values := kv.values
		if len(values) == 0 {
			values = []string{"-"}
		}
		key := kv.key + ":"
		for _, v := range values {
			fmt.Fprintf(&b, "%-*s%s\n", width, key, v)
			key = ""
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// blockedLines are a policy's blocked versions, "2.4.0: recall FSN-1".
func blockedLines(bs []*medfleetv1.BlockedVersion) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = cell(b.GetVersion()) + ": " + cell(oneLine(b.GetReason()))
	}
	return out
}

// writePolicy writes a policy as "key: value" lines.
func writePolicy(w io.Writer, p *medfleetv1.FirmwarePolicy, now time.Time) error {
	minVersion := "none"
	if v := p.GetMinVersion(); v != "" {
		minVersion = cell(v)
	}
	blocked := blockedLines(p.GetBlockedVersions())
	if len(blocked) == 0 {
		blocked = []string{"none"}
	}
	return writeKeyValueLines(w, []keyValues{
		{"model", []string{cell(p.GetModel())}},
		{"min version", []string{minVersion}},
		{"blocked", blocked},
		{"updated", []string{timeAndAge(p.GetUpdateTime(), now, "never")}},
		{"etag", []string{cell(p.GetEtag())}},
	})
}

// writePolicyTable writes policies as a table with a count.
func writePolicyTable(w io.Writer, policies []*medfleetv1.FirmwarePolicy, now time.Time) error {
	if len(policies) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "MODEL\tMIN VERSION\tBLOCKED\tUPDATED")
		for _, p := range policies {
			blocked := make([]string, len(p.GetBlockedVersions()))
			for i, b := range p.GetBlockedVersions() {
				blocked[i] = cell(b.GetVersion())
			}
			fmt.Fprintln(tw, strings.Join([]string{
				cell(p.GetModel()),
				cell(p.GetMinVersion()),
				cell(strings.Join(blocked, ", ")),
				lastSeen(p.GetUpdateTime(), now),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	noun := "policies"
	if len(policies) == 1 {
		noun = "policy"
	}
	_, err := fmt.Fprintf(w, "%d %s\n", len(policies), noun)
	return err
}
