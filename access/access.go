// Package access knows who may call the API: users, their bearer tokens
// (stored as SHA-256 only), and what each role may do (roles.go). Users
// and tokens live in etcd and are read from memory, fed by a watch, so
// that authenticating a call costs no etcd round trip and a revocation on
// one replica reaches the others within a watch event.
//
// It imports proto and internal packages only.
package access

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/internal/etcdview"
	"github.com/medfleet/medfleet/internal/token"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

const (
	usersPrefix  = "/medfleet/v1/users/"
	tokensPrefix = "/medfleet/v1/tokens/" // by token id
)

// Expected outcomes.
var (
	ErrUnauthenticated = errors.New("access: unknown, expired or revoked credential")
	ErrNotFound        = errors.New("access: not found")
	ErrAlreadyExists   = errors.New("access: already exists")
	ErrConflict        = errors.New("access: changed concurrently; retry")
)

// FieldError is a request field that cannot be used.
type FieldError struct{ Field, Reason string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Principal is an authenticated caller.
type Principal struct {
	User string // user id
	Role pb.Role
	// Site confines the caller to one site's devices; "" is every site.
	Site string
	// Method is "token", "certificate" or "insecure".
	Method string
}

// Name is the caller's resource name, as the audit log records it.
func (p *Principal) Name() string { return "users/" + p.User }

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidID checks a user or site id: 1-64 of [a-z0-9._-], starting with a
// letter or digit.
func ValidID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%q is not an id: 1-64 characters of [a-z0-9._-], starting with a letter or digit", id)
	}
	return nil
}

// Store holds users and tokens.
type Store struct {
	client *clientv3.Client
	log    *slog.Logger
	now    func() time.Time
	users  *etcdview.View[*pb.User]
	tokens *etcdview.View[*pb.Token]

	touched sync.Map // token id -> time.Time of the last last_use_time write
}

// New builds a store; it reads nothing until Load.
func New(client *clientv3.Client, log *slog.Logger, now func() time.Time) *Store {
	return &Store{client: client, log: log, now: now,
		users:  etcdview.New(client, usersPrefix, etcdview.Proto[pb.User], log),
		tokens: etcdview.New(client, tokensPrefix, etcdview.Proto[pb.Token], log),
	}
}

// Load reads users and tokens; call it before serving.
func (s *Store) Load(ctx context.Context) error {
	if _, err := s.users.Load(ctx); err != nil {
		return err
	}
	_, err := s.tokens.Load(ctx)
	return err
}

// Run follows changes until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() { defer close(done); s.tokens.Run(ctx) }()
	s.users.Run(ctx)
	<-done
	return nil
}

// Authenticate checks a bearer token.
func (s *Store) Authenticate(bearer string) (*Principal, error) {
	id, secret, ok := token.Parse(bearer, token.API)
	if !ok {
		return nil, ErrUnauthenticated
	}
	t, _, ok := s.tokens.Get(id)
	if !ok || !token.Matches(t.SecretSha256, secret) {
		return nil, ErrUnauthenticated
	}
	now := s.now()
	if t.ExpireTime != nil && !now.Before(t.ExpireTime.AsTime()) {
		return nil, ErrUnauthenticated
	}
	user, _, _ := strings.Cut(strings.TrimPrefix(t.Name, "users/"), "/")
	u, _, ok := s.users.Get(user)
	if !ok {
		return nil, ErrUnauthenticated
	}
	s.touch(id, now)
	site := u.Site
	if t.Site != "" {
		site = t.Site
	}
	return &Principal{User: user, Role: u.Role, Site: site, Method: "token"}, nil
}

// touch records a token's last use, at most once a minute, off the
// request path.
func (s *Store) touch(id string, now time.Time) {
	if last, ok := s.touched.Load(id); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	s.touched.Store(id, now)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		t, rev, ok := s.tokens.Get(id)
		if !ok {
			return
		}
		t = proto.CloneOf(t)
		t.LastUseTime = timestamppb.New(now)
		if _, err := s.putIf(ctx, tokensPrefix+id, t, rev); err != nil && !errors.Is(err, ErrConflict) {
			s.log.Debug("cannot record a token's last use", "token", id, "err", err)
		}
	}()
}

// Certificate returns the principal of a verified client certificate whose
// common name is cn.
func (s *Store) Certificate(cn string) (*Principal, error) {
	u, _, ok := s.users.Get(cn)
	if !ok {
		return nil, ErrUnauthenticated
	}
	return &Principal{User: cn, Role: u.Role, Site: u.Site, Method: "certificate"}, nil
}

// CreateUser adds a user.
func (s *Store) CreateUser(ctx context.Context, id string, u *pb.User, creator string) (*pb.User, error) {
	if err := ValidID(id); err != nil {
		return nil, &FieldError{"user_id", err.Error()}
	}
	if u == nil {
		return nil, &FieldError{"user", "required"}
	}
	if u.Role == pb.Role_ROLE_UNSPECIFIED || pb.Role_name[int32(u.Role)] == "" {
		return nil, &FieldError{"user.role", "required: admin, biomed, facility or automation"}
	}
	if u.Site != "" {
		if err := ValidID(u.Site); err != nil {
			return nil, &FieldError{"user.site", err.Error()}
		}
	}
	if len(u.Description) > 256 {
		return nil, &FieldError{"user.description", "longer than 256 characters"}
	}
	n := &pb.User{Name: "users/" + id, Role: u.Role, Site: u.Site, Description: u.Description,
		CreateTime: timestamppb.New(s.now()), Creator: creator}
	rev, err := s.putIf(ctx, usersPrefix+id, n, 0)
	if errors.Is(err, ErrConflict) {
		return nil, fmt.Errorf("user %s: %w", id, ErrAlreadyExists)
	}
	if err != nil {
		return nil, err
	}
	s.users.Put(id, n, rev)
	return withEtag(n, rev), nil
}

// GetUser returns a user.
func (s *Store) GetUser(id string) (*pb.User, error) {
	u, rev, ok := s.users.Get(id)
	if !ok {
		return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	return withEtag(u, rev), nil
}

// ListUsers pages through users in id order.
func (s *Store) ListUsers(pageSize int, pageToken string) ([]*pb.User, string, error) {
	var ids []string
	s.users.Range(func(k string, _ *pb.User) bool { ids = append(ids, k); return true })
	page, next, err := paginate(ids, pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	out := make([]*pb.User, 0, len(page))
	for _, id := range page {
		if u, err := s.GetUser(id); err == nil {
			out = append(out, u)
		}
	}
	return out, next, nil
}

// DeleteUser removes a user and every token of theirs.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	if _, _, ok := s.users.Get(id); !ok {
		return fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// The user goes first: without it, its tokens no longer authenticate.
	resp, err := s.client.Delete(ctx, usersPrefix+id)
	if err != nil {
		return fmt.Errorf("access: %w", err)
	}
	s.users.Delete(id, resp.Header.Revision)
	for _, t := range s.tokensOf(id) {
		tid := path(t.Name)
		r, err := s.client.Delete(ctx, tokensPrefix+tid)
		if err != nil {
			return fmt.Errorf("access: %w", err)
		}
		s.tokens.Delete(tid, r.Header.Revision)
	}
	return nil
}

// CreateToken makes a token for user; the bearer string is returned once.
func (s *Store) CreateToken(ctx context.Context, user string, t *pb.Token, ttl time.Duration) (*pb.Token, string, error) {
	u, _, ok := s.users.Get(user)
	if !ok {
		return nil, "", fmt.Errorf("user %s: %w", user, ErrNotFound)
	}
	if t == nil {
		t = &pb.Token{}
	}
	if t.Site != "" {
		if err := ValidID(t.Site); err != nil {
			return nil, "", &FieldError{"token.site", err.Error()}
		}
		if u.Site != "" && u.Site != t.Site {
			return nil, "", &FieldError{"token.site", fmt.Sprintf("the user is confined to site %s", u.Site)}
		}
	}
	if ttl < 0 || ttl > 0 && ttl < time.Minute {
		return nil, "", &FieldError{"ttl", "zero (no expiry) or at least 1m"}
	}
	if len(t.Description) > 256 {
		return nil, "", &FieldError{"token.description", "longer than 256 characters"}
	}
	id, hash, bearer := token.New(token.API)
	now := s.now()
	n := &pb.Token{Name: "users/" + user + "/tokens/" + id, Site: t.Site, Description: t.Description,
		CreateTime: timestamppb.New(now), SecretSha256: hash}
	if ttl > 0 {
		n.ExpireTime = timestamppb.New(now.Add(ttl))
	}
	rev, err := s.putIf(ctx, tokensPrefix+id, n, 0)
	if err != nil {
		return nil, "", err
	}
	s.tokens.Put(id, n, rev)
	return public(n), bearer, nil
}

// ListTokens pages through the tokens of user ("-": everybody's).
func (s *Store) ListTokens(user string, pageSize int, pageToken string) ([]*pb.Token, string, error) {
	if user != "-" {
		if _, _, ok := s.users.Get(user); !ok {
			return nil, "", fmt.Errorf("user %s: %w", user, ErrNotFound)
		}
	}
	byName := map[string]*pb.Token{}
	var names []string
	s.tokens.Range(func(_ string, t *pb.Token) bool {
		if user == "-" || strings.HasPrefix(t.Name, "users/"+user+"/") {
			byName[t.Name] = t
			names = append(names, t.Name)
		}
		return true
	})
	page, next, err := paginate(names, pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	out := make([]*pb.Token, len(page))
	for i, n := range page {
		out[i] = public(byName[n])
	}
	return out, next, nil
}

// DeleteToken revokes a token of user.
func (s *Store) DeleteToken(ctx context.Context, user, id string) error {
	t, _, ok := s.tokens.Get(id)
	if !ok || t.Name != "users/"+user+"/tokens/"+id {
		return fmt.Errorf("token users/%s/tokens/%s: %w", user, id, ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.client.Delete(ctx, tokensPrefix+id)
	if err != nil {
		return fmt.Errorf("access: %w", err)
	}
	s.tokens.Delete(id, resp.Header.Revision)
	return nil
}

// Bootstrap creates the first administrator, "admin", with a token written
// to path (mode 0600), when there are no users at all. It reports whether it
// did.
func (s *Store) Bootstrap(ctx context.Context, path string) (bool, error) {
	if s.users.Len() > 0 {
		return false, nil
	}
	if _, err := s.CreateUser(ctx, "admin", &pb.User{Role: pb.Role_ROLE_ADMIN, Description: "created on first start"}, "system"); err != nil {
		if errors.Is(err, ErrAlreadyExists) { // another replica was first
			return false, nil
		}
		return false, err
	}
	_, bearer, err := s.CreateToken(ctx, "admin", &pb.Token{Description: "first administrator token"}, 0)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("access: %w", err)
	}
	if err := os.WriteFile(path, []byte(bearer+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("access: %w", err)
	}
	return true, nil
}

func (s *Store) tokensOf(user string) []*pb.Token {
	var out []*pb.Token
	s.tokens.Range(func(_ string, t *pb.Token) bool {
		if strings.HasPrefix(t.Name, "users/"+user+"/") {
			out = append(out, t)
		}
		return true
	})
	return out
}

// putIf writes m at key if the key's ModRevision is rev (0: absent).
func (s *Store) putIf(ctx context.Context, key string, m proto.Message, rev int64) (int64, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("access: %w", err)
	}
	if !resp.Succeeded {
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

func withEtag(u *pb.User, rev int64) *pb.User {
	u = proto.CloneOf(u)
	u.Etag = strconv.FormatInt(rev, 10)
	return u
}

// public is a token as the API shows it: without the secret's hash.
func public(t *pb.Token) *pb.Token {
	t = proto.CloneOf(t)
	t.SecretSha256 = nil
	return t
}

// path is the last segment of a resource name.
func path(name string) string { return name[strings.LastIndexByte(name, '/')+1:] }

// paginate sorts keys and returns the page after the token's key.
func paginate(keys []string, pageSize int, pageToken string) ([]string, string, error) {
	switch {
	case pageSize < 0 || pageSize > 1000:
		return nil, "", &FieldError{"page_size", "between 0 and 1000"}
	case pageSize == 0:
		pageSize = 100
	}
	slices.Sort(keys)
	if pageToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil {
			return nil, "", &FieldError{"page_token", "not a token from a previous page"}
		}
		i, _ := slices.BinarySearch(keys, string(after)+"\x00")
		keys = keys[i:]
	}
	if len(keys) <= pageSize {
		return keys, "", nil
	}
	return keys[:pageSize], base64.RawURLEncoding.EncodeToString([]byte(keys[pageSize-1])), nil
}
