package inventory

import (
	"encoding/base64"
	"encoding/json"
	"hash/fnv"
)

// pageToken is what a ListDevices page token carries: where the next page
// starts, and a digest of the query, so that a token is refused with a
// different filter. It is opaque to clients (base64url of JSON).
type pageToken struct {
	After string `json:"a"`
	Query uint64 `json:"q"`
}

func queryDigest(filter string, showDecommissioned bool) uint64 {
	h := fnv.New64a()
	h.Write([]byte(filter))
	if showDecommissioned {
		h.Write([]byte{1})
	}
	return h.Sum64()
}

func encodePageToken(t pageToken) string {
	b, _ := json.Marshal(t) // cannot fail: two plain fields
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken returns the token's start, refusing tokens that are
// malformed or were issued for another query.
func decodePageToken(s string, query uint64) (string, error) {
	if s == "" {
		return "", nil
	}
	bad := &FieldError{Field: "page_token", Reason: "not a token from a previous ListDevices response"}
	if len(s) > 256 {
		return "", bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", bad
	}
	var t pageToken
	if err := json.Unmarshal(b, &t); err != nil || t.After == "" {
		return "", bad
	}
	if t.Query != query {
		return "", &FieldError{Field: "page_token", Reason: "issued for a different filter or show_decommissioned; start again without it"}
	}
	return t.After, nil
}
