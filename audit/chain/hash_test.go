package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func prevHash() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func goldenRecord() *pb.AuditRecord {
	return &pb.AuditRecord{
		Name:      "ignored: not hashed",
		Sequence:  17,
		Time:      timestamppb.New(time.Date(2026, 11, 1, 8, 30, 0, 123456789, time.UTC)),
		Actor:     "users/alice",
		Role:      "biomed",
		Action:    "/medfleet.v1.DeviceService/UpdateDevice",
		Target:    "devices/pump-1",
		Source:    "10.0.0.7:51234",
		RequestId: "req-42",
		Outcome:   "OK",
		Detail:    "update_mask=labels",
		PrevHash:  prevHash(),
		Hash:      []byte("ignored: not hashed"),
	}
}

// TestHash pins the canonical encoding twice: the bytes are spelled out here
// as the package documentation describes them, independently of Hash, and
// the digest is a golden value, so a change of encoding cannot pass silently.
func TestHash(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name     string
		rec      *pb.AuditRecord
		encoding string
		golden   string
	}{
		{
			name: "every field",
			rec:  goldenRecord(),
			encoding: "medfleet-audit-v1\n" +
				"\x00\x00\x00\x00\x00\x00\x00\x11" + // sequence 17
				"\x18\xe3\xde\x93\x21\x47\x1d\x15" + // 1793521800123456789 ns
				"\x0b" + "users/alice" +
				"\x06" + "biomed" +
				"\x27" + "/medfleet.v1.DeviceService/UpdateDevice" +
				"\x0e" + "devices/pump-1" +
				"\x0e" + "10.0.0.7:51234" +
				"\x06" + "req-42" +
				"\x02" + "OK" +
				"\x12" + "update_mask=labels" +
				"\x20" + string(prevHash()),
			golden: "8faa088eb6fca2ee513ec9cf8106e47fc94919ea92df829a273fd456b25b967d",
		},
		{
			name: "empty fields, long detail, time before 1970",
			rec: &pb.AuditRecord{
				Sequence: 1,
				Time:     &timestamppb.Timestamp{Seconds: -1, Nanos: 500},
				Detail:   long,
			},
			encoding: "medfleet-audit-v1\n" +
				"\x00\x00\x00\x00\x00\x00\x00\x01" +
				"\xff\xff\xff\xff\xc4\x65\x37\xf4" + // -999999500 ns
				"\x00\x00\x00\x00\x00\x00\x00" +
				"\xc8\x01" + long + // uvarint(200)
				"\x00",
			golden: "9127074f056b20f899c966e0239443bf770d0521d8db2031e8776c1477acf243",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Hash(tc.rec)
			want := sha256.Sum256([]byte(tc.encoding))
			if hex.EncodeToString(got) != hex.EncodeToString(want[:]) {
				t.Errorf("Hash(%v) = %x, want SHA-256 of the documented encoding %x", tc.rec, got, want)
			}
			if hex.EncodeToString(got) != tc.golden {
				t.Errorf("Hash(%v) = %x, want golden %s", tc.rec, got, tc.golden)
			}
		})
	}
}

// TestHashCoversEveryField changes one field at a time: every field but
// name and hash must change the hash.
func TestHashCoversEveryField(t *testing.T) {
	base := Hash(goldenRecord())
	tests := []struct {
		name   string
		change func(r *pb.AuditRecord)
		same   bool
	}{
		{name: "name", change: func(r *pb.AuditRecord) { r.Name = "auditRecords/00000000000000000017" }, same: true},
		{name: "hash", change: func(r *pb.AuditRecord) { r.Hash = nil }, same: true},
		{name: "sequence", change: func(r *pb.AuditRecord) { r.Sequence++ }},
		{name: "time", change: func(r *pb.AuditRecord) { r.Time.Nanos++ }},
		{name: "actor", change: func(r *pb.AuditRecord) { r.Actor = "users/alicf" }},
		{name: "role", change: func(r *pb.AuditRecord) { r.Role = "admin" }},
		{name: "action", change: func(r *pb.AuditRecord) { r.Action = "device.register" }},
		{name: "target", change: func(r *pb.AuditRecord) { r.Target = "devices/pump-2" }},
		{name: "source", change: func(r *pb.AuditRecord) { r.Source = "10.0.0.8:51234" }},
		{name: "request_id", change: func(r *pb.AuditRecord) { r.RequestId = "req-43" }},
		{name: "outcome", change: func(r *pb.AuditRecord) { r.Outcome = "PermissionDenied" }},
		{name: "detail", change: func(r *pb.AuditRecord) { r.Detail = "" }},
		{name: "prev_hash", change: func(r *pb.AuditRecord) { r.PrevHash[31] ^= 1 }},
		// Length prefixes keep a byte from moving between fields unnoticed.
		{name: "boundary", change: func(r *pb.AuditRecord) { r.Actor, r.Role = "users/alicebiomed", "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := proto.Clone(goldenRecord()).(*pb.AuditRecord)
			tc.change(r)
			if got := Hash(r); (string(got) == string(base)) != tc.same {
				t.Errorf("Hash after changing %s = %x, base %x; want same = %v", tc.name, got, base, tc.same)
			}
		})
	}
}
