package token

import "testing"

func TestRoundTrip(t *testing.T) {
	id, hash, bearer := New(API)
	gotID, secret, ok := Parse(bearer, API)
	if !ok || gotID != id {
		t.Fatalf("Parse(New) = %q, %v; want %q", gotID, ok, id)
	}
	if !Matches(hash, secret) {
		t.Error("Matches(hash, secret) = false")
	}
	if Matches(hash, secret[:len(secret)-1]+"A") && secret[len(secret)-1] != 'A' {
		t.Error("Matches accepted another secret")
	}
	if _, _, ok := Parse(bearer, Enrollment); ok {
		t.Error("an API token parsed as an enrolment token")
	}
	for _, bad := range []string{"", "mft_", bearer + "x", "mft_ABCDEFGHIJKLMNOP_" + secret, bearer[:20] + "-" + bearer[21:]} {
		if _, _, ok := Parse(bad, API); ok {
			t.Errorf("Parse(%q) ok, want refused", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	_, _, b := New(API)
	f.Add(b)
	f.Add("mft_0123456789abcdef_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, ok := Parse(s, API)
		if ok && API+id+"_"+secret != s {
			t.Fatalf("Parse(%q) = %q, %q: does not rebuild the input", s, id, secret)
		}
	})
}
