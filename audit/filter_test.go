package audit

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func isField(err error, field string) bool {
	var fe *FieldError
	return errors.As(err, &fe) && fe.Field == field
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		in      string
		want    string // canonical form
		wantErr string // the FieldError's reason
	}{
		{in: "", want: ""},
		{in: "  \t", want: ""},
		{in: `actor = "users/alice"`, want: `actor = "users/alice"`},
		{in: `actor="users/alice"AND role!="admin"`, want: `actor = "users/alice" AND role != "admin"`},
		{in: `action = "/medfleet.v1.DeviceService/UpdateDevice" AND target = "devices/pump-1" AND outcome != "OK"`,
			want: `action = "/medfleet.v1.DeviceService/UpdateDevice" AND target = "devices/pump-1" AND outcome != "OK"`},
		{in: `detail = "x"`, wantErr: `unknown field "detail"; use actor, role, action, target, outcome or time`},
		{in: `target = "say \"hi\" \\ bye"`, want: `target = "say \"hi\" \\ bye"`},
		{in: `target = ""`, want: `target = ""`},
		// Go's escapes, and control characters written raw, come out as
		// strconv.Quote writes them.
		{in: `target = "a\nb\u00e9"`, want: `target = "a\nbé"`},
		{in: "target = \"a\tb\"", want: `target = "a\tb"`},
		{in: `time >= "2026-11-01T00:00:00Z" AND time < "2026-11-02T00:00:00.5+01:00"`,
			want: `time >= "2026-11-01T00:00:00Z" AND time < "2026-11-02T00:00:00.5+01:00"`},
		{in: `time > "2026-11-01T00:00:00.000Z" AND time <= "2026-11-01T00:00:00Z"`,
			want: `time > "2026-11-01T00:00:00Z" AND time <= "2026-11-01T00:00:00Z"`},
		{in: `who = "x"`, wantErr: `unknown field "who"; use actor, role, action, target, outcome or time`},
		{in: `actor >= "a"`, wantErr: `actor cannot be compared with >=; use = or !=`},
		{in: `time = "2026-11-01T00:00:00Z"`, wantErr: `time cannot be compared with =; use >=, >, <= or <`},
		{in: `time >= "2026-11-01"`, wantErr: `time "2026-11-01" is not RFC 3339, such as "2026-11-01T00:00:00Z"`},
		{in: `actor = alice`, wantErr: `the value in actor = alice must be quoted, as in actor = "alice"`},
		{in: `time >= 2026-11-01T00:00:00Z`, wantErr: `the value in time >= 2026-11-01T00:00:00Z must be quoted, as in time >= "2026-11-01T00:00:00Z"`},
		{in: `actor "alice"`, wantErr: `expected an operator after actor at offset 6, got "alice"`},
		{in: `actor "alice" AND role = "x"`, wantErr: `expected an operator after actor at offset 6, got "alice"`},
		{in: `actor = "a" and role = "b"`, wantErr: `expected AND at offset 12, got "and"`},
		{in: `actor = "a" OR role = "b"`, wantErr: `expected AND at offset 12, got "OR"`},
		{in: `actor = "a" AND`, wantErr: `expected a field name at offset 15, got the end of the filter`},
		{in: `actor =`, wantErr: `expected a value after actor = at offset 7, got the end of the filter`},
		{in: `actor = "a" role = "b"`, wantErr: `expected AND at offset 12, got "role"`},
		{in: `"actor" = "a"`, wantErr: `expected a field name at offset 0, got "actor"`},
		{in: `actor = "unterminated`, wantErr: `unterminated string at offset 8`},
		{in: `actor = "a\qb"`, wantErr: `bad escape in a string at offset 10`},
		{in: `actor ! "a"`, wantErr: `expected != at offset 6, got "!"`},
		{in: `(actor = "a")`, wantErr: `unexpected "(" at offset 0`},
		{in: `NOT actor = "a"`, wantErr: `expected an operator after NOT at offset 4, got "actor"`},
		{in: `actor-id = "a"`, wantErr: `unknown field "actor-id"; use actor, role, action, target, outcome or time`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			f, err := parseFilter(tc.in)
			if tc.wantErr != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != "filter" || fe.Reason != tc.wantErr {
					t.Errorf("parseFilter(%q) = %v, want filter: %s", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFilter(%q): %v", tc.in, err)
			}
			if got := f.String(); got != tc.want {
				t.Errorf("parseFilter(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	r := &pb.AuditRecord{
		Time:    timestamppb.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)),
		Actor:   "users/alice",
		Role:    "biomed",
		Action:  "device.register",
		Target:  "devices/pump-1",
		Outcome: "PermissionDenied",
	}
	tests := []struct {
		filter string
		want   bool
	}{
		{filter: ``, want: true},
		{filter: `actor = "users/alice"`, want: true},
		{filter: `actor = "users/Alice"`, want: false},
		{filter: `actor != "users/alice"`, want: false},
		{filter: `role = "biomed" AND action = "device.register" AND target = "devices/pump-1"`, want: true},
		{filter: `outcome = "OK"`, want: false},
		{filter: `outcome != "OK"`, want: true},
		{filter: `time >= "2026-11-01T12:00:00Z"`, want: true},
		{filter: `time > "2026-11-01T12:00:00Z"`, want: false},
		{filter: `time <= "2026-11-01T12:00:00Z"`, want: true},
		{filter: `time < "2026-11-01T12:00:00Z"`, want: false},
		{filter: `time < "2026-11-01T13:00:00+02:00"`, want: false},
		{filter: `time >= "2026-11-01T00:00:00Z" AND time < "2026-11-02T00:00:00Z" AND actor = "users/bob"`, want: false},
	}
	for _, tc := range tests {
		f, err := parseFilter(tc.filter)
		if err != nil {
			t.Fatalf("parseFilter(%q): %v", tc.filter, err)
		}
		if got := f.match(r); got != tc.want {
			t.Errorf("match(%q) = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		`actor = "users/alice"`,
		`actor != "a\"b\\" AND time >= "2026-11-01T00:00:00Z"`,
		`time < "0000-01-01T00:00:00+01:00"`,
		`x = "\"`, `!=`, `a = "b" AND`, `<<=>=!`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := parseFilter(s)
		if err != nil {
			if !isField(err, "filter") {
				t.Fatalf("parseFilter(%q) = %v, want a field error on filter", s, err)
			}
			return
		}
		// The canonical form parses back to itself, and matches as the
		// original does.
		again, err := parseFilter(flt.String())
		if err != nil || again.String() != flt.String() {
			t.Fatalf("parseFilter(%q).String() = %q does not round-trip: %v", s, flt.String(), err)
		}
		r := &pb.AuditRecord{Actor: "users/alice", Time: timestamppb.New(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))}
		if flt.match(r) != again.match(r) {
			t.Fatalf("parseFilter(%q) and its canonical form %q match differently", s, flt.String())
		}
	})
}
