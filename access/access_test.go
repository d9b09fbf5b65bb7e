package access

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medfleet/medfleet/internal/etcdtest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestTokens(t *testing.T) {
	e := etcdtest.Start(t, "")
	now := time.Now()
	s := New(e.Client, slog.New(slog.DiscardHandler), func() time.Time { return now })
	ctx := t.Context()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, "alice", &pb.User{Role: pb.Role_ROLE_BIOMED, Site: "north"}, "users/admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, "alice", &pb.User{Role: pb.Role_ROLE_BIOMED}, "users/admin"); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("second CreateUser = %v, want ErrAlreadyExists", err)
	}
	var fe *FieldError
	if _, err := s.CreateUser(ctx, "bob", &pb.User{}, "users/admin"); !errors.As(err, &fe) || fe.Field != "user.role" {
		t.Errorf("CreateUser without a role = %v, want a FieldError on user.role", err)
	}
	tok, bearer, err := s.CreateToken(ctx, "alice", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.SecretSha256) != 0 || strings.Contains(tok.String(), bearer[20:]) {
		t.Error("CreateToken returned the secret or its hash in the token")
	}
	p, err := s.Authenticate(bearer)
	if err != nil || p.User != "alice" || p.Role != pb.Role_ROLE_BIOMED || p.Site != "north" {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	if _, err := s.Authenticate(bearer[:len(bearer)-2] + "xx"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a wrong secret: %v, want ErrUnauthenticated", err)
	}
	if _, _, err := s.CreateToken(ctx, "alice", &pb.Token{Site: "south"}, 0); !errors.As(err, &fe) || fe.Field != "token.site" {
		t.Errorf("a token outside the user's site = %v, want a FieldError on token.site", err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := s.Authenticate(bearer); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("an expired token: %v, want ErrUnauthenticated", err)
	}
	_, b2, _ := s.CreateToken(ctx, "alice", nil, 0)
	id := strings.Split(b2, "_")[1]
	if err := s.DeleteToken(ctx, "alice", id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(b2); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a deleted token: %v, want ErrUnauthenticated", err)
	}
	_, b3, _ := s.CreateToken(ctx, "alice", nil, 0)
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(b3); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a token of a deleted user: %v, want ErrUnauthenticated", err)
	}
	if _, err := s.Certificate("alice"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a certificate of a deleted user: %v, want ErrUnauthenticated", err)
	}
}

func TestBootstrap(t *testing.T) {
	e := etcdtest.Start(t, "")
	s := New(e.Client, slog.New(slog.DiscardHandler), time.Now)
	if err := s.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "admin.token")
	if did, err := s.Bootstrap(t.Context(), path); !did || err != nil {
		t.Fatalf("Bootstrap = %v, %v; want true", did, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	b, _ := os.ReadFile(path)
	if p, err := s.Authenticate(strings.TrimSpace(string(b))); err != nil || p.Role != pb.Role_ROLE_ADMIN {
		t.Fatalf("the bootstrap token: %+v, %v", p, err)
	}
	if did, _ := s.Bootstrap(t.Context(), path+"2"); did {
		t.Error("Bootstrap ran again with users present")
	}
}

func TestRoleNames(t *testing.T) {
	for _, r := range []pb.Role{pb.Role_ROLE_ADMIN, pb.Role_ROLE_BIOMED, pb.Role_ROLE_FACILITY, pb.Role_ROLE_AUTOMATION} {
		if got, ok := ParseRole(RoleName(r)); !ok || got != r {
			t.Errorf("ParseRole(RoleName(%v)) = %v, %v", r, got, ok)
		}
	}
	if _, ok := ParseRole("unspecified"); ok {
		t.Error("ParseRole(unspecified) ok")
	}
}
