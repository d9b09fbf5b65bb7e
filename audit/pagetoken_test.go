package audit

import "testing"

func TestPageToken(t *testing.T) {
	f, _ := parseFilter(`actor = "users/alice"`)
	other, _ := parseFilter(`actor = "users/bob"`)
	tok := encodePageToken(pageToken{After: 1234, Filter: filterDigest(f)})
	tests := []struct {
		name      string
		token     string
		filter    *filter
		wantAfter uint64
		wantErr   bool
	}{
		{name: "round trip", token: tok, filter: f, wantAfter: 1234},
		{name: "other filter", token: tok, filter: other, wantErr: true},
		{name: "not base64", token: "!!", filter: f, wantErr: true},
		{name: "not JSON", token: "Z2FyYmFnZQ", filter: f, wantErr: true},
		{name: "no position", token: encodePageToken(pageToken{Filter: filterDigest(f)}), filter: f, wantErr: true},
		{name: "too long", token: tok + string(make([]byte, maxPageTokenBytes)), filter: f, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			after, err := decodePageToken(tc.token, filterDigest(tc.filter))
			if tc.wantErr {
				if !isField(err, "page_token") {
					t.Errorf("decodePageToken(%q) = %d, %v; want a field error on page_token", tc.token, after, err)
				}
				return
			}
			if err != nil || after != tc.wantAfter {
				t.Errorf("decodePageToken(%q) = %d, %v; want %d", tc.token, after, err, tc.wantAfter)
			}
		})
	}
}

func FuzzPageToken(f *testing.F) {
	none, _ := parseFilter("")
	digest := filterDigest(none)
	f.Add(encodePageToken(pageToken{After: 10000, Filter: digest}))
	f.Add(encodePageToken(pageToken{After: 1, Filter: 42}))
	f.Add("eyJhIjotMX0") // {"a":-1}
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		after, err := decodePageToken(s, digest)
		if err != nil {
			if !isField(err, "page_token") {
				t.Fatalf("decodePageToken(%q) = %v, want a field error on page_token", s, err)
			}
			return
		}
		if after == 0 {
			t.Fatalf("decodePageToken(%q) accepted a token with no position", s)
		}
		if again, err := decodePageToken(encodePageToken(pageToken{After: after, Filter: digest}), digest); err != nil || again != after {
			t.Fatalf("token for %d does not round-trip: %d, %v", after, again, err)
		}
	})
}
