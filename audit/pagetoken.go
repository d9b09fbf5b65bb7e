package audit

import (
	"encoding/base64"
	"encoding/json"
	"hash/fnv"
)

// pageToken is what a ListAuditRecords page token carries: the sequence
// the next page starts after, and a digest of the filter, so that a token is
// refused with another filter. Opaque to clients: base64url of JSON.
type pageToken struct {
	After  uint64 `json:"a"`
	Filter uint64 `json:"f"`
}

// maxPageTokenBytes is far above any token encodePageToken makes.
const maxPageTokenBytes = 128

func filterDigest(f *filter) uint64 {
	h := fnv.New64a()
	h.Write([]byte(f.String()))
	return h.Sum64()
}

func encodePageToken(t pageToken) string {
	b, _ := json.Marshal(t) // cannot fail: two integers
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken returns the sequence a token starts after, refusing tokens
// that are malformed or were issued for another filter.
func decodePageToken(s string, filter uint64) (uint64, error) {
	bad := &FieldError{Field: "page_token", Reason: "not a token from a previous ListAuditRecords response"}
	if len(s) > maxPageTokenBytes {
		return 0, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, bad
	}
	var t pageToken
	if err := json.Unmarshal(b, &t); err != nil || t.After == 0 {
		return 0, bad
	}
	if t.Filter != filter {
		return 0, &FieldError{Field: "page_token", Reason: "issued for a different filter; start again without it"}
	}
	return t.After, nil
}
