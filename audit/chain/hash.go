package chain

import (
	"crypto/sha256"
	"encoding/binary"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// hashPrefix versions the encoding: a new one gets a new prefix, so a hash
// can never be read under the wrong rules.
const hashPrefix = "medfleet-audit-v1\n"

// Hash returns the SHA-256 of r's canonical encoding: every field except
// name and hash, prev_hash included. The encoding is, in this order:
//
//	the 18 ASCII bytes "medfleet-audit-v1\n"
//	sequence      8 bytes, big-endian
//	time          8 bytes, big-endian two's complement: Unix nanoseconds,
//	              seconds*1e9 + nanos (0 when time is unset)
//	actor, role, action, target, source, request_id, outcome, detail, prev_hash
//	              each as uvarint(length in bytes) followed by the bytes
//
// uvarint is encoding/binary's unsigned varint (LEB128). name is left out
// because it is derived from sequence, hash because it is the result.
func Hash(r *pb.AuditRecord) []byte {
	b := make([]byte, 0, 256)
	b = append(b, hashPrefix...)
	b = binary.BigEndian.AppendUint64(b, r.GetSequence())
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(r.GetTime())))
	for _, s := range []string{r.GetActor(), r.GetRole(), r.GetAction(), r.GetTarget(), r.GetSource(), r.GetRequestId(), r.GetOutcome(), r.GetDetail()} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.GetPrevHash())))
	b = append(b, r.GetPrevHash()...)
	sum := sha256.Sum256(b)
	return sum[:]
}

// unixNano is defined for every Timestamp, unlike time.Time.UnixNano: Hash
// must be total, because the verifier hashes whatever etcd holds. Append and
// the verifier accept only times for which it is exact (inRange).
func unixNano(t *timestamppb.Timestamp) int64 {
	return t.GetSeconds()*1e9 + int64(t.GetNanos())
}

// Unix nanoseconds in an int64 span 1677-09-21 to 2262-04-11.
const (
	minSeconds = -9223372036
	maxSeconds = 9223372035
)

// inRange reports whether unixNano(t) is t exactly, so that no two times
// share an encoding.
func InRange(t *timestamppb.Timestamp) bool {
	return t.GetNanos() >= 0 && t.GetNanos() < 1e9 && t.GetSeconds() >= minSeconds && t.GetSeconds() <= maxSeconds
}
