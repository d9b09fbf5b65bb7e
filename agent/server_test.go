package agent

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/medfleet/medfleet/coap"
)

// testServer is just enough of the control plane's CoAP side for the agent's
// tests, over real CoAP on 127.0.0.1: it records registrations, decodes
// reports with coap.DecodePack and coap.ParseReport, drops sequence numbers
// it has seen and answers with a coap.Desired. It can be stopped and started
// again on the same port, keeping what it recorded. Over DTLS
// (startDTLSTestServer, dtls_test.go) it also checks every request's ep
// against the session's identity and serves POST /bs.
type testServer struct {
	t    *testing.T
	addr string

	mu         sync.Mutex
	regs       []testRegistration
	known      map[string]bool           // registered device ids
	last       map[string]uint64         // highest accepted seq per device
	accepted   map[string][]*coap.Report // in arrival order
	refused    map[string][]uint64       // seqs answered 4.00
	refuseSeq  map[uint64]bool           // answer 4.00 to these seqs
	regCode    codes.Code                // when set, the answer to every POST /rd
	regMaxAge  uint32                    // Max-Age of that answer
	interval   uint32                    // Desired.Interval
	dupes      int                       // reports dropped as seen before
	heartbeats int
	deletes    int
	outOfOrder int // reports answered with the server's lower seq, not applied
	// stored, when not nil, is the highest stored seq per device, sent as
	// the desired state's stored (the test moves it).
	stored map[string]uint64

	// Firmware (fwserver_test.go): the desired `fw` of every device, the
	// images served by GET /fw/{sha256}, and what was asked for.
	fw           *coap.FirmwareTarget
	images       map[string][]byte // by the sha256 of the URI
	fwRequests   []fwRequest
	fwSilent     func(num int64) bool // no answer to these blocks
	fwBusy       int                  // answer this many requests 5.03
	fwETag       []byte               // when set, the ETag of every image
	fwMore       bool                 // M = 1 on every block, the last too
	reportTraces map[uint64]string    // traceparent of a report, by seq

	dtls testDTLS // zero for plain CoAP

	srv  interface{ Stop() }
	l    io.Closer
	done chan struct{}
}

type testRegistration struct {
	ID, Lifetime string
	Format       message.MediaType
	Reg          coap.Registration
}

// startTestServer starts a server on a free loopback port; it stops at the
// end of the test.
func startTestServer(t *testing.T) *testServer {
	t.Helper()
	s := &testServer{
		t: t, known: map[string]bool{}, last: map[string]uint64{},
		accepted: map[string][]*coap.Report{}, refused: map[string][]uint64{}, refuseSeq: map[uint64]bool{},
		images: map[string][]byte{}, reportTraces: map[uint64]string{},
	}
	s.start("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

// router routes the protocol's paths to the server's handlers.
func (s *testServer) router() *mux.Router {
	r := mux.NewRouter()
	r.SetErrorHandler(func(error) {})
	for pattern, h := range map[string]mux.HandlerFunc{
		coap.PathRegistration:           s.handleRegister,
		coap.PathRegistration + "/{id}": s.handleRegistration,
		coap.PathData:                   s.handleData,
		coap.PathBootstrap:              s.handleBootstrap,
		coap.PathFirmware + "/{sha256}": s.handleFirmware,
	} {
		if err := r.Handle(pattern, h); err != nil {
			s.t.Fatal(err)
		}
	}
	return r
}

// start serves on addr (the same port again after stop).
func (s *testServer) start(addr string) {
	s.t.Helper()
	if s.dtls.pki != nil {
		s.startDTLS(addr)
		return
	}
	var l *coapnet.UDPConn
	var err error
	for range 50 { // the port of a stopped server can take a moment to free
		if l, err = coapnet.NewListenUDP("udp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen %s: %v", addr, err)
	}
	s.addr = l.LocalAddr().String()
	srv := udp.NewServer(options.WithMux(s.router()), options.WithErrors(func(error) {}),
		options.WithBlockwise(false, blockwise.SZX1024, time.Second)) // /fw serves each Block2 request itself
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	s.mu.Lock()
	s.srv, s.l, s.done = srv, l, done
	s.mu.Unlock()
}

// stop stops serving; the port stays free until start.
func (s *testServer) stop() {
	s.mu.Lock()
	srv, l, done := s.srv, s.l, s.done
	s.srv, s.l, s.done = nil, nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Stop()
	<-done
	_ = l.Close() // Stop does not close a listener that Serve had not taken yet
}

func query(r *mux.Message, key string) string {
	qs, _ := r.Queries()
	for _, q := range qs {
		if v, ok := strings.CutPrefix(q, key+"="); ok {
			return v
		}
	}
	return ""
}

func (s *testServer) respond(w mux.ResponseWriter, code codes.Code, d *coap.Desired) {
	if d == nil {
		_ = w.SetResponse(code, message.TextPlain, nil)
		return
	}
	body, err := d.Encode(coap.FormatCBOR)
	if err != nil {
		s.t.Errorf("encode desired: %v", err)
	}
	_ = w.SetResponse(code, coap.FormatCBOR, bytes.NewReader(body))
}

func (s *testServer) diagnose(w mux.ResponseWriter, code codes.Code, diag string) {
	_ = w.SetResponse(code, message.TextPlain, strings.NewReader(diag))
}

// handleRegister is POST /rd?ep={id}&lt={seconds}.
func (s *testServer) handleRegister(w mux.ResponseWriter, r *mux.Message) {
	id := query(r, coap.QueryEndpoint)
	body, _ := r.ReadBody()
	format, _ := r.ContentFormat()
	reg, err := coap.DecodeRegistration(format, body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.authorized(w, r, id) {
		return
	}
	if err != nil || r.Code() != codes.POST {
		s.t.Errorf("registration of %q: %v %v", id, r.Code(), err)
		s.diagnose(w, codes.BadRequest, "bad registration")
		return
	}
	s.regs = append(s.regs, testRegistration{ID: id, Lifetime: query(r, coap.QueryLifetime), Format: format, Reg: *reg})
	if s.regCode != 0 {
		_ = w.SetResponse(s.regCode, message.TextPlain, strings.NewReader("go away"))
		if s.regMaxAge > 0 {
			w.Message().SetOptionUint32(message.MaxAge, s.regMaxAge)
		}
		return
	}
	s.known[id] = true
	s.respond(w, codes.Created, &coap.Desired{Seq: s.last[id], Interval: s.interval, Firmware: s.fw})
}

// handleRegistration is POST (heartbeat) and DELETE /rd/{id}.
func (s *testServer) handleRegistration(w mux.ResponseWriter, r *mux.Message) {
	id := r.RouteParams.Vars["id"]
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.authorized(w, r, id) {
		return
	}
	if !s.known[id] {
		s.respond(w, codes.NotFound, nil)
		return
	}
	switch r.Code() {
	case codes.POST:
		s.heartbeats++
		s.respond(w, codes.Changed, nil)
	case codes.DELETE:
		s.deletes++
		delete(s.known, id)
		s.respond(w, codes.Deleted, nil)
	default:
		s.respond(w, codes.MethodNotAllowed, nil)
	}
}

// handleData is POST /dp?ep={id}.
func (s *testServer) handleData(w mux.ResponseWriter, r *mux.Message) {
	id := query(r, coap.QueryEndpoint)
	body, _ := r.ReadBody()
	format, _ := r.ContentFormat()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.authorized(w, r, id) {
		return
	}
	if !s.known[id] {
		s.respond(w, codes.NotFound, nil)
		return
	}
	if accept, err := r.Accept(); err != nil || accept != coap.FormatCBOR {
		s.t.Errorf("report of %q: Accept = %v, %v; want %d", id, accept, err, coap.FormatCBOR)
	}
	pack, err := coap.DecodePack(format, body)
	if err != nil {
		s.diagnose(w, codes.BadRequest, err.Error())
		return
	}
	rep, err := coap.ParseReport(pack)
	if err != nil {
		s.t.Errorf("report of %q: %v", id, err)
		s.diagnose(w, codes.BadRequest, err.Error())
		return
	}
	held, _ := strconv.ParseUint(query(r, coap.QueryHeld), 10, 64)
	switch {
	case held == 0:
		s.t.Errorf("report %d of %q without held", rep.Seq, id)
	case held <= s.last[id]+1 && s.last[id]+1 < rep.Seq:
		s.outOfOrder++ // the device holds earlier ones this server lacks
	case s.refuseSeq[rep.Seq]:
		s.refused[id] = append(s.refused[id], rep.Seq)
		s.diagnose(w, codes.BadRequest, "seq: refused by the test")
		return
	case rep.Seq <= s.last[id]:
		s.dupes++
	default:
		s.accepted[id] = append(s.accepted[id], rep)
		s.last[id] = rep.Seq
		if tp, err := r.Options().GetString(coap.OptionTraceparent); err == nil {
			s.reportTraces[rep.Seq] = tp
		}
	}
	d := &coap.Desired{Seq: s.last[id], Interval: s.interval, Firmware: s.fw}
	if s.stored != nil {
		d.Stored = ptr(s.stored[id])
	}
	s.respond(w, codes.Changed, d)
}

// with runs f under the server's lock.
func (s *testServer) with(f func(s *testServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// reports returns the reports accepted from id.
func (s *testServer) reports(id string) []*coap.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*coap.Report(nil), s.accepted[id]...)
}

func (s *testServer) registrations() []testRegistration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]testRegistration(nil), s.regs...)
}

// waitFor polls cond until it holds, or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freeAddr returns a loopback UDP address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	return addr
}
