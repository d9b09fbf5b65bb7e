package firmware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/firmware/blob"
	"github.com/medfleet/medfleet/firmware/manifest"
	"github.com/medfleet/medfleet/internal/etcdview"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Keys in etcd.
const (
	prefixArtifacts = "/medfleet/v1/artifacts/"         // {sha256} -> Artifact
	prefixPolicies  = "/medfleet/v1/firmware-policies/" // {model, path-escaped} -> FirmwarePolicy
)

// DefaultMaxImageSize bounds an upload.
const DefaultMaxImageSize = 256 << 20

// Store is the artifacts and the policies: etcd holds the records (every
// replica follows them with a watch), the blob store the bytes.
type Store struct {
	client    *clientv3.Client
	blobs     *blob.Store
	keys      manifest.Keys
	maxSize   int64
	artifacts *etcdview.View[*pb.Artifact]
	policies  *etcdview.View[*pb.FirmwarePolicy]
	log       *slog.Logger
	now       func() time.Time
	// users says which unfinished rollouts use an artifact; set by
	// SetUsers (the rollouts sit above this package).
	users func(sha string) []string
}

// New builds a store; Run follows etcd. keys are the trusted signing keys:
// with none, every upload is refused.
func New(client *clientv3.Client, blobs *blob.Store, keys manifest.Keys, maxSize int64, log *slog.Logger) *Store {
	if maxSize <= 0 {
		maxSize = DefaultMaxImageSize
	}
	return &Store{
		client: client, blobs: blobs, keys: keys, maxSize: maxSize, log: log, now: time.Now,
		artifacts: etcdview.New(client, prefixArtifacts, etcdview.Proto[pb.Artifact], log),
		policies:  etcdview.New(client, prefixPolicies, etcdview.Proto[pb.FirmwarePolicy], log),
		users:     func(string) []string { return nil },
	}
}

// SetUsers tells the store which unfinished rollouts use an artifact.
func (s *Store) SetUsers(users func(sha string) []string) { s.users = users }

// Load reads the artifacts and policies once, before serving.
func (s *Store) Load(ctx context.Context) error {
	if _, err := s.artifacts.Load(ctx); err != nil {
		return err
	}
	_, err := s.policies.Load(ctx)
	return err
}

// Run follows etcd until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.artifacts.Run(ctx) })
	g.Go(func() error { return s.policies.Run(ctx) })
	return g.Wait()
}

// Blobs is the store of images' bytes.
func (s *Store) Blobs() *blob.Store { return s.blobs }

// Upload stores an image and its record. The signature must verify with a
// trusted key over the manifest of the bytes received, and the version
// must be allowed for every model.
func (s *Store) Upload(ctx context.Context, meta *pb.ArtifactUpload, body io.Reader, creator string) (*pb.Artifact, error) {
	if meta == nil {
		return nil, fieldErr("metadata", "required as the first message")
	}
	if err := manifest.ValidateVersion(meta.GetVersion()); err != nil {
		return nil, fieldErr("metadata.version", "%v", err)
	}
	if len(meta.GetModels()) == 0 {
		return nil, fieldErr("metadata.models", "at least one model is required")
	}
	if sha := meta.GetSha256(); sha != "" {
		if err := manifest.ValidateSHA256(sha); err != nil {
			return nil, fieldErr("metadata.sha256", "%v", err)
		}
	}
	if len(meta.GetSignature()) == 0 {
		return nil, fieldErr("metadata.signature", "required: an ed25519 signature of the manifest (medfleetctl firmware sign)")
	}
	if len(s.keys) == 0 {
		return nil, fieldErr("metadata.signature", "this server trusts no signing key (firmware.trusted_keys), so it accepts no image")
	}
	for _, model := range meta.GetModels() {
		if err := s.Allowed(model, meta.GetVersion()); err != nil {
			return nil, err
		}
		if sha, ok := s.versionOf(model, meta.GetVersion()); ok {
			return nil, fmt.Errorf("%w: version %s of model %q is artifacts/%s", ErrExists, meta.GetVersion(), model, sha)
		}
	}
	existed := map[string]bool{}
	sha, size, err := s.blobs.Put(body, s.maxSize)
	if errors.Is(err, blob.ErrTooLarge) {
		return nil, fieldErr("chunk", "the image is larger than %d bytes (firmware.max_image_size)", s.maxSize)
	}
	if err != nil {
		return nil, err
	}
	_, _, existed[sha] = s.artifacts.Get(sha)
	// drop removes the bytes of a refused upload unless a record owns them.
	drop := func() {
		if !existed[sha] {
			if err := s.blobs.Delete(sha); err != nil {
				s.log.Warn("cannot remove the bytes of a refused upload", "sha256", sha, "err", err)
			}
		}
	}
	if want := meta.GetSha256(); want != "" && want != sha {
		drop()
		return nil, fieldErr("metadata.sha256", "%s, but the bytes received hash to %s", want, sha)
	}
	m := manifest.Manifest{Models: meta.GetModels(), Version: meta.GetVersion(), SHA256: sha, Size: uint64(size)}
	if err := m.Validate(); err != nil {
		drop()
		var fe *manifest.FieldError
		if errors.As(err, &fe) {
			return nil, fieldErr("metadata."+fe.Field, "%v", fe.Err)
		}
		return nil, err
	}
	keyID, err := s.keys.Verify(m, meta.GetSignature())
	if err != nil {
		drop()
		return nil, fieldErr("metadata.signature", "does not verify with any trusted key over the manifest of these bytes (models %v, version %s, sha256 %s, size %d)",
			m.Models, m.Version, sha, size)
	}
	models := slices.Clone(meta.GetModels())
	slices.Sort(models)
	a := &pb.Artifact{
		Name: "artifacts/" + sha, Version: meta.GetVersion(), Models: slices.Compact(models), Sha256: sha, SizeBytes: size,
		Signature: meta.GetSignature(), SigningKeyId: keyID, Description: meta.GetDescription(),
		CreateTime: timestamppb.New(s.now()), Creator: creator,
	}
	val, err := proto.Marshal(a)
	if err != nil {
		return nil, err
	}
	key := prefixArtifacts + sha
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%w: artifacts/%s (the same image was uploaded before)", ErrExists, sha)
	}
	s.artifacts.Put(sha, a, resp.Header.Revision)
	return s.view(a), nil
}

// versionOf finds the artifact of a model's version.
func (s *Store) versionOf(model, version string) (sha string, ok bool) {
	s.artifacts.Range(func(k string, a *pb.Artifact) bool {
		if a.GetVersion() == version && slices.Contains(a.GetModels(), model) {
			sha, ok = k, true
		}
		return !ok
	})
	return sha, ok
}

// view is what callers see of an artifact: a copy with the rollouts using it.
func (s *Store) view(a *pb.Artifact) *pb.Artifact {
	a = proto.Clone(a).(*pb.Artifact)
	a.ActiveRollouts = s.users(a.GetSha256())
	return a
}

// Artifact returns the record of an image, shared: never to be changed.
func (s *Store) Artifact(sha string) (*pb.Artifact, bool) {
	a, _, ok := s.artifacts.Get(sha)
	return a, ok
}

// Get returns an artifact by its name, "artifacts/{sha256}".
func (s *Store) Get(name string) (*pb.Artifact, error) {
	sha, err := ParseArtifactName(name)
	if err != nil {
		return nil, err
	}
	a, ok := s.Artifact(sha)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return s.view(a), nil
}

// ParseArtifactName returns the SHA-256 of "artifacts/{sha256}".
func ParseArtifactName(name string) (string, error) {
	sha, ok := strings.CutPrefix(name, "artifacts/")
	if !ok {
		return "", fieldErr("name", "%q is not artifacts/{sha256}", name)
	}
	if err := manifest.ValidateSHA256(sha); err != nil {
		return "", fieldErr("name", "%q: the sha256 is %v", name, err)
	}
	return sha, nil
}

// List returns artifacts, newest first, optionally for one model, a page
// at a time. The page token is the offset.
func (s *Store) List(model string, pageSize int, pageToken string) ([]*pb.Artifact, string, error) {
	var all []*pb.Artifact
	s.artifacts.Range(func(_ string, a *pb.Artifact) bool {
		if model == "" || slices.Contains(a.GetModels(), model) {
			all = append(all, a)
		}
		return true
	})
	slices.SortFunc(all, func(a, b *pb.Artifact) int {
		return cmp.Or(b.GetCreateTime().AsTime().Compare(a.GetCreateTime().AsTime()), cmp.Compare(a.GetSha256(), b.GetSha256()))
	})
	return page(all, pageSize, pageToken, s.view)
}

// page cuts one page of items, viewed through view.
func page[T any](all []T, size int, token string, view func(T) T) ([]T, string, error) {
	switch {
	case size <= 0:
		size = 50
	case size > 1000:
		size = 1000
	}
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(all) {
			return nil, "", fieldErr("page_token", "not a token this list returned")
		}
		start = n
	}
	end := min(start+size, len(all))
	out := make([]T, 0, end-start)
	for _, v := range all[start:end] {
		out = append(out, view(v))
	}
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return out, next, nil
}

// Delete removes an artifact's record and bytes, unless an unfinished
// rollout uses it.
func (s *Store) Delete(ctx context.Context, name string) error {
	sha, err := ParseArtifactName(name)
	if err != nil {
		return err
	}
	if _, ok := s.Artifact(sha); !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if users := s.users(sha); len(users) > 0 {
		return fmt.Errorf("%w: %s is installed by %v; abort them first", ErrInUse, name, users)
	}
	resp, err := s.client.Delete(ctx, prefixArtifacts+sha)
	if err != nil {
		return err
	}
	s.artifacts.Delete(sha, resp.Header.Revision)
	return s.blobs.Delete(sha)
}

// Policy returns a model's policy; a model without one has an empty
// policy.
func (s *Store) Policy(model string) (*pb.FirmwarePolicy, error) {
	if model == "" {
		return nil, fieldErr("model", "required")
	}
	p, rev, ok := s.policies.Get(url.PathEscape(model))
	if !ok {
		return &pb.FirmwarePolicy{Model: model}, nil
	}
	return policyEtag(p, rev), nil
}

func policyEtag(p *pb.FirmwarePolicy, rev int64) *pb.FirmwarePolicy {
	p = proto.Clone(p).(*pb.FirmwarePolicy)
	p.Etag = strconv.FormatInt(rev, 10)
	return p
}

// Policies returns every policy, by model.
func (s *Store) Policies() []*pb.FirmwarePolicy {
	var out []*pb.FirmwarePolicy
	s.policies.Range(func(k string, p *pb.FirmwarePolicy) bool {
		_, rev, _ := s.policies.Get(k)
		out = append(out, policyEtag(p, rev))
		return true
	})
	slices.SortFunc(out, func(a, b *pb.FirmwarePolicy) int { return cmp.Compare(a.GetModel(), b.GetModel()) })
	return out
}

// UpdatePolicy creates or replaces a model's policy; a non-empty etag
// must be the current one.
func (s *Store) UpdatePolicy(ctx context.Context, p *pb.FirmwarePolicy) (*pb.FirmwarePolicy, error) {
	if p == nil || p.GetModel() == "" {
		return nil, fieldErr("policy.model", "required")
	}
	if v := p.GetMinVersion(); v != "" {
		if err := manifest.ValidateVersion(v); err != nil {
			return nil, fieldErr("policy.min_version", "%v", err)
		}
	}
	for i, b := range p.GetBlockedVersions() {
		if err := manifest.ValidateVersion(b.GetVersion()); err != nil {
			return nil, fieldErr(fmt.Sprintf("policy.blocked_versions[%d].version", i), "%v", err)
		}
	}
	stored := &pb.FirmwarePolicy{Model: p.GetModel(), MinVersion: p.GetMinVersion(), BlockedVersions: p.GetBlockedVersions(),
		UpdateTime: timestamppb.New(s.now())}
	val, err := proto.Marshal(stored)
	if err != nil {
		return nil, err
	}
	key := prefixPolicies + url.PathEscape(p.GetModel())
	txn := s.client.Txn(ctx)
	if etag := p.GetEtag(); etag != "" {
		rev, err := strconv.ParseInt(etag, 10, 64)
		if err != nil {
			return nil, fieldErr("policy.etag", "%q is not an etag this server returned", etag)
		}
		txn = txn.If(clientv3.Compare(clientv3.ModRevision(key), "=", rev))
	}
	resp, err := txn.Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%w: the policy of %q", ErrConflict, p.GetModel())
	}
	s.policies.Put(url.PathEscape(p.GetModel()), stored, resp.Header.Revision)
	return policyEtag(stored, resp.Header.Revision), nil
}

// Allowed says whether a model's policy lets devices install version:
// not blocked, not below the floor. The error wraps ErrPolicy.
func (s *Store) Allowed(model, version string) error {
	p, _, ok := s.policies.Get(url.PathEscape(model))
	if !ok {
		return nil
	}
	for _, b := range p.GetBlockedVersions() {
		if b.GetVersion() == version {
			return fmt.Errorf("%w: version %s of %q is blocked: %s", ErrPolicy, version, model, b.GetReason())
		}
	}
	if floor := p.GetMinVersion(); floor != "" && manifest.CompareVersions(version, floor) < 0 {
		return fmt.Errorf("%w: version %s of %q is below the minimum %s", ErrPolicy, version, model, floor)
	}
	return nil
}
