package agent

import (
	"bytes"
	"crypto/sha256"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"

	"github.com/medfleet/medfleet/coap"
)

// fwRequest is one GET /fw/{sha256} the test server saw.
type fwRequest struct {
	SHA256 string
	Num    int64 // Block2 block number, in blocks of Size
	Size   int64
	Trace  string
}

// handleFirmware is GET /fw/{sha256}, served per Block2 request as the
// protocol says: each block is its own request, answered 2.05 with Block2,
// ETag (the first 8 bytes of the image's SHA-256) and Size2.
func (s *testServer) handleFirmware(w mux.ResponseWriter, r *mux.Message) {
	sha := r.RouteParams.Vars["sha256"]
	szx, num := blockwise.SZX1024, int64(0)
	if v, err := r.Options().GetUint32(message.Block2); err == nil {
		if szx, num, _, err = blockwise.DecodeBlockOption(v); err != nil {
			s.diagnose(w, codes.BadOption, "Block2")
			return
		}
	}
	szx = min(szx, blockwise.SZX1024)
	size := szx.Size()
	trace, _ := r.Options().GetString(coap.OptionTraceparent)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fwRequests = append(s.fwRequests, fwRequest{SHA256: sha, Num: num, Size: size, Trace: trace})
	if typ := r.Type(); typ != message.NonConfirmable {
		s.t.Errorf("firmware block request of type %v, want NON", typ)
	}
	if r.Code() != codes.GET {
		s.t.Errorf("firmware request %v, want GET", r.Code())
	}
	if s.fwSilent != nil && s.fwSilent(num) {
		return // an empty ACK and no response: the agent times out
	}
	if s.fwBusy > 0 {
		s.fwBusy--
		s.diagnose(w, codes.ServiceUnavailable, "too many downloads")
		w.Message().SetOptionUint32(message.MaxAge, 1)
		return
	}
	img, ok := s.images[sha]
	if !ok {
		s.diagnose(w, codes.NotFound, "no such image")
		return
	}
	off := num * size
	if off >= int64(len(img)) {
		s.diagnose(w, codes.BadOption, "block beyond the image")
		return
	}
	end := min(off+size, int64(len(img)))
	opt, err := blockwise.EncodeBlockOption(szx, num, s.fwMore || end < int64(len(img)))
	if err != nil {
		s.t.Errorf("Block2 of block %d: %v", num, err)
	}
	etag := s.fwETag
	if etag == nil {
		sum := sha256.Sum256(img)
		etag = sum[:coap.FirmwareETagLength]
	}
	_ = w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(img[off:end]))
	w.Message().SetOptionUint32(message.Block2, opt)
	w.Message().SetOptionBytes(message.ETag, etag)
	w.Message().SetOptionUint32(message.Size2, uint32(len(img)))
}

// firmwareRequests returns the GET /fw requests seen so far.
func (s *testServer) firmwareRequests() []fwRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fwRequest(nil), s.fwRequests...)
}

// blockNums returns the block numbers of requests.
func blockNums(reqs []fwRequest) []int64 {
	out := make([]int64, len(reqs))
	for i, r := range reqs {
		out[i] = r.Num
	}
	return out
}
