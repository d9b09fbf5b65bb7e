package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/medfleet/medfleet/audit/chain"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
	// readKeys bounds the keys of one etcd range read, and maxExamined the
	// records one List call reads, so that a filter matching little costs a
	// bounded amount per call; the caller continues with the page token.
	readKeys    = 1000
	maxExamined = 10000
)

// ListResult is one page of records, oldest first, and the log's head at the
// revision the page was read at.
type ListResult struct {
	Records       []*pb.AuditRecord
	NextPageToken string // "" on the last page
	HeadSequence  uint64 // 0 for an empty log
	HeadHash      []byte // nil for an empty log
}

// List returns the records after startSeq that match filter, in sequence
// order, at most pageSize of them (0: 100; above 1000: 1000). token, from
// a previous result with the same filter, continues where it stopped. Every
// page comes from one etcd revision, together with the head.
//
// With a filter, a page can be short, or empty, and still have a next page
// token: List stops after examining 10,000 records.
//
// Errors for a bad filter, page_token or page_size are *FieldError.
func (l *Log) List(ctx context.Context, filter string, startSeq uint64, pageSize int, token string) (ListResult, error) {
	switch {
	case pageSize < 0:
		return ListResult{}, &FieldError{Field: "page_size", Reason: fmt.Sprintf("%d is negative", pageSize)}
	case pageSize == 0:
		pageSize = defaultPageSize
	case pageSize > maxPageSize:
		pageSize = maxPageSize // AIP-158: coerce, do not refuse
	}
	f, err := parseFilter(filter)
	if err != nil {
		return ListResult{}, err
	}
	after := startSeq
	if token != "" {
		tokAfter, err := decodePageToken(token, filterDigest(f))
		if err != nil {
			return ListResult{}, err
		}
		after = max(after, tokAfter)
	}
	// Without a filter every key read is returned: read no more than a page.
	limit := int64(readKeys)
	if len(f.terms) == 0 {
		limit = int64(pageSize)
	}

	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	end := clientv3.WithRange(clientv3.GetPrefixRangeEnd(recordsPrefix))
	// After the cursor's key, not at cursor+1: no overflow at the top.
	from := func(seq uint64) string { return recordKey(seq) + "\x00" }
	txn, err := l.client.Txn(ctx).Then(
		clientv3.OpGet(headKey),
		clientv3.OpGet(from(after), end, clientv3.WithLimit(limit)),
	).Commit()
	if err != nil {
		return ListResult{}, fmt.Errorf("audit: list: %w", err)
	}
	h, err := parseHead((*clientv3.GetResponse)(txn.Responses[0].GetResponseRange()))
	if err != nil {
		return ListResult{}, err
	}
	res := ListResult{HeadSequence: h.seq}
	if h.seq > 0 {
		res.HeadHash = h.hash
	}
	rng := (*clientv3.GetResponse)(txn.Responses[1].GetResponseRange())
	examined := 0
	for {
		for i, kv := range rng.Kvs {
			r, seq, err := decodeRecord(kv.Key, kv.Value)
			if err != nil {
				return ListResult{}, err
			}
			examined++
			after = seq
			if !f.match(r) {
				continue
			}
			res.Records = append(res.Records, r)
			if len(res.Records) == pageSize {
				if i < len(rng.Kvs)-1 || rng.More {
					res.NextPageToken = encodePageToken(pageToken{After: after, Filter: filterDigest(f)})
				}
				return res, nil
			}
		}
		if !rng.More {
			return res, nil
		}
		if examined >= maxExamined {
			res.NextPageToken = encodePageToken(pageToken{After: after, Filter: filterDigest(f)})
			return res, nil
		}
		rng, err = l.client.Get(ctx, from(after), end,
			clientv3.WithLimit(int64(min(readKeys, maxExamined-examined))), clientv3.WithRev(txn.Header.Revision))
		if err != nil {
			return ListResult{}, fmt.Errorf("audit: list: %w", err)
		}
	}
}

// decodeRecord returns the record stored under key and its sequence. A value
// that does not decode comes back as a record with only its name and
// sequence, so that the verifier names it rather than the listing failing.
func decodeRecord(key, value []byte) (*pb.AuditRecord, uint64, error) {
	digits, _ := strings.CutPrefix(string(key), recordsPrefix)
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || len(digits) != 20 {
		return nil, 0, fmt.Errorf("audit: unexpected key %q under %s", key, recordsPrefix)
	}
	r := &pb.AuditRecord{}
	if err := proto.Unmarshal(value, r); err != nil {
		r = &pb.AuditRecord{Name: chain.Name(seq), Sequence: seq}
	}
	return r, seq, nil
}
