package chain

import (
	"bytes"
	"fmt"
	"strconv"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// ZeroHash is the prev_hash of record 1.
var ZeroHash = make([]byte, 32)

// Verifier checks a log's records in sequence order, page by page, without
// holding them: it keeps only the last sequence and hash. Once a check fails,
// every later call returns the same *BrokenError.
type Verifier struct {
	count uint64 // the last sequence checked
	last  []byte // its hash
	err   error
}

// NewVerifier returns a verifier expecting record 1.
func NewVerifier() *Verifier { return &Verifier{last: ZeroHash} }

// Count returns how many records have passed.
func (v *Verifier) Count() uint64 { return v.count }

// Add checks the next record: its sequence follows the previous one (the
// first is 1), its name matches its sequence, its hash is Hash of its
// contents and its prev_hash is the previous record's hash.
func (v *Verifier) Add(r *pb.AuditRecord) error {
	if v.err != nil {
		return v.err
	}
	want := v.count + 1
	seq := r.GetSequence()
	switch {
	case seq > want:
		return v.fail(want, fmt.Sprintf("missing (the next record is %d)", seq))
	case seq < want:
		return v.fail(want, fmt.Sprintf("out of order (a record numbered %d follows %d)", seq, v.count))
	case r.GetName() != Name(seq):
		return v.fail(seq, fmt.Sprintf("name %q does not match its sequence", r.GetName()))
	case !InRange(r.GetTime()):
		return v.fail(seq, "time is outside 1677-2262 or malformed")
	case !bytes.Equal(r.GetHash(), Hash(r)):
		return v.fail(seq, "hash does not match its contents")
	case !bytes.Equal(r.GetPrevHash(), v.last):
		if seq == 1 {
			return v.fail(seq, "prev_hash is not 32 zero bytes")
		}
		return v.fail(seq, fmt.Sprintf("prev_hash does not match the hash of record %d (one of them was changed, or records were removed)", v.count))
	}
	v.count, v.last = seq, r.GetHash()
	return nil
}

// Done checks that the chain ends at the log's head (head_sequence and
// head_hash of the last ListAuditRecords response): a log cut short, or
// extended past its head, fails.
func (v *Verifier) Done(headSeq uint64, headHash []byte) error {
	if v.err != nil {
		return v.err
	}
	switch {
	case v.count < headSeq:
		return v.fail(v.count+1, fmt.Sprintf("missing (the chain ends at %d but the head is %d)", v.count, headSeq))
	case v.count > headSeq:
		return v.fail(headSeq+1, fmt.Sprintf("beyond the head (%d): not written by the log", headSeq))
	case headSeq == 0 && len(headHash) == 0:
		return nil
	case !bytes.Equal(v.last, headHash):
		return v.fail(headSeq, "hash differs from the head's (the newest record was changed)")
	}
	return nil
}

func (v *Verifier) fail(seq uint64, reason string) error {
	v.err = &BrokenError{Sequence: seq, Reason: reason}
	return v.err
}

// BrokenError names the first record at which the chain does not hold.
type BrokenError struct {
	Sequence uint64
	Reason   string
}

func (e *BrokenError) Error() string {
	return "audit record " + strconv.FormatUint(e.Sequence, 10) + ": " + e.Reason
}

// Name is the resource name of record seq: "auditRecords/" and 20 digits.
func Name(seq uint64) string { return fmt.Sprintf("auditRecords/%020d", seq) }
