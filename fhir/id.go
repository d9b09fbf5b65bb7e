package fhir

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// maxID is the longest FHIR id.
const maxID = 64

// ValidID reports whether s is a FHIR id: 1 to 64 of [A-Za-z0-9.-].
func ValidID(s string) bool {
	if s == "" || len(s) > maxID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idChar(s[i]) {
			return false
		}
	}
	return true
}

func idChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.'
}

// encodeID writes key, a Medfleet id (1 to 64 of [A-Za-z0-9._-] starting
// with a letter or digit: a device or facility id), between prefix and
// suffix as part of a FHIR id, in the first of three forms that fits in 64
// characters:
//
//   - plain: the key itself, when it has no underscore;
//   - escaped: "." then the key with "_" as ".", "." as "-." and "-" as
//     "--" (so "PUMP_01" is ".PUMP.01");
//   - digest: ".." then 32 hex digits of the key's SHA-256.
//
// A key never starts with "." or "-", so the three forms cannot meet, and
// each is one-to-one: no two keys share an id.
func encodeID(prefix, key, suffix string) string {
	room := maxID - len(prefix) - len(suffix)
	if !strings.Contains(key, "_") && len(key) <= room {
		return prefix + key + suffix
	}
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('.')
	for i := 0; i < len(key); i++ {
		switch c := key[i]; c {
		case '_':
			b.WriteByte('.')
		case '.', '-':
			b.WriteByte('-')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	if b.Len()-len(prefix) <= room {
		return b.String() + suffix
	}
	return prefix + ".." + digest(key) + suffix
}

func digest(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// errNotOurs is the error of an id the export never writes.
var errNotOurs = errors.New("not an id the export writes")

// decodeID reverses encodeID: it returns the key of id, or, for the
// digest form, the digest (and isDigest). Only the form encodeID writes
// for a key is accepted.
func decodeID(prefix, id, suffix string) (key string, isDigest bool, err error) {
	part, ok := strings.CutPrefix(id, prefix)
	if !ok || !ValidID(id) {
		return "", false, errNotOurs
	}
	if part, ok = strings.CutSuffix(part, suffix); !ok {
		return "", false, errNotOurs
	}
	switch {
	case strings.HasPrefix(part, ".."):
		d := part[2:]
		if len(d) != 32 || strings.Trim(d, "0123456789abcdef") != "" {
			return "", false, errNotOurs
		}
		return d, true, nil
	case strings.HasPrefix(part, "."):
		var b strings.Builder
		for i := 1; i < len(part); i++ {
			switch c := part[i]; c {
			case '.':
				b.WriteByte('_')
			case '-':
				i++
				if i == len(part) || part[i] != '.' && part[i] != '-' {
					return "", false, errNotOurs
				}
				b.WriteByte(part[i])
			default:
				b.WriteByte(c)
			}
		}
		key = b.String()
	default:
		key = part
	}
	if key == "" || !keyStart(key[0]) || encodeID(prefix, key, suffix) != id {
		return "", false, errNotOurs
	}
	return key, false, nil
}

// keyStart reports whether a Medfleet id may start with c.
func keyStart(c byte) bool { return c != '.' && c != '-' && c != '_' }

// DeviceID is the Device id of the device with Medfleet id device.
func DeviceID(device string) string { return encodeID("", device, "") }

// DeviceRef is what a Device id or a metric id names: a device id, or,
// for ids of the digest form, a digest that only the device's id matches.
type DeviceRef struct {
	key      string
	isDigest bool
}

// ID returns the device id, when the reference holds it rather than a
// digest.
func (r DeviceRef) ID() (string, bool) { return r.key, !r.isDigest }

// Matches reports whether device is the device named.
func (r DeviceRef) Matches(device string) bool {
	if r.isDigest {
		return digest(device) == r.key
	}
	return device == r.key
}

// ParseDeviceID reads a Device id.
func ParseDeviceID(id string) (DeviceRef, error) {
	key, d, err := decodeID("", id, "")
	return DeviceRef{key, d}, err
}
