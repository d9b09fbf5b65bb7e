// Package token makes and reads the bearer strings Medfleet hands out:
// "{prefix}{id}_{secret}", where the id (16 of [a-z0-9]) names the stored
// record and the secret (32 random bytes, base64url) is kept only as its
// SHA-256.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// Prefixes say what a token is for, so that one pasted in the wrong place
// is refused at once.
const (
	API        = "mft_" // a user's API token
	Enrollment = "mfe_" // a device's one-time enrolment token
)

const (
	idLen     = 16
	secretLen = 43 // base64url of 32 bytes, unpadded
)

// New returns a fresh token: its id, the SHA-256 of its secret, and the
// bearer string to give to its holder once.
func New(prefix string) (id string, hash []byte, bearer string) {
	id = ID(idLen)
	raw := make([]byte, 32)
	rand.Read(raw) // never fails (crypto/rand)
	secret := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(secret))
	return id, sum[:], prefix + id + "_" + secret
}

// ID is n random characters of [a-z0-9]: a public identifier, not a
// secret.
func ID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Parse splits a bearer string with the given prefix into its id and
// secret.
func Parse(bearer, prefix string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(bearer, prefix)
	if !found || len(rest) != idLen+1+secretLen || rest[idLen] != '_' {
		return "", "", false
	}
	id, secret = rest[:idLen], rest[idLen+1:]
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return "", "", false
		}
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// Matches reports, in constant time, whether secret hashes to hash.
func Matches(hash []byte, secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], hash) == 1
}
