package gateway

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	netclient "github.com/plgd-dev/go-coap/v3/net/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// The plain-UDP path is served by a read loop of the gateway's own on
// go-coap's message codec, not by go-coap's UDP server. go-coap keeps
// every response of every peer for EXCHANGE_LIFETIME (247 s) and scans a
// peer's whole cache on each of its datagrams in its single read loop
// (go-coap issue #586): at 10,000 devices reporting once a second that is
// 2.5 million cached responses, 1.4 GiB, and a read loop that queues
// reports for hundreds of milliseconds (docs/benchmarks.md). Devices send
// one confirmable request at a time (RFC 7252 NSTART 1), so deduplication
// needs only each peer's last exchange: its message id and its answer.
// Reports are idempotent besides (the inventory ignores a seq it has), so
// a retransmission that arrives while its original is still being handled
// is dropped and answered from the remembered exchange on the next try.
//
// DTLS sessions go through the same per-datagram path (session.go): pion/dtls
// does the handshake and the record layer, and each session's last exchange
// lives with the session.

// exchangeLifetime is how long a peer's last exchange is remembered
// (RFC 7252 EXCHANGE_LIFETIME with the default transmission parameters).
const exchangeLifetime = 247 * time.Second

// maxDatagram bounds what is read of a datagram; a request larger than
// coap.MaxPayload is answered 4.13 by parseRequest.
const maxDatagram = 64 << 10

// udpServer is the plain-UDP read loop.
type udpServer struct {
	g        *Gateway
	conn     *net.UDPConn
	out      packetWriter
	peers    *peerTable
	msgID    atomic.Uint32 // for NON answers and resets
	inFlight chan struct{}
}

// packetWriter sends datagrams: the socket, or what a test captures.
type packetWriter interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// maxInFlight bounds the datagrams being handled at once.
const maxInFlight = 4096

// newUDPServer reads conn and answers through out, keeping peers' state
// in peers.
func newUDPServer(g *Gateway, conn *net.UDPConn, out packetWriter, peers *peerTable) *udpServer {
	s := &udpServer{g: g, conn: conn, out: out, peers: peers, inFlight: make(chan struct{}, maxInFlight)}
	s.msgID.Store(rand.Uint32())
	return s
}

// serveUDP answers requests on conn with a read loop per CPU until ctx
// ends, then waits for the requests in hand.
func (g *Gateway) serveUDP(ctx context.Context, conn *net.UDPConn) error {
	s := newUDPServer(g, conn, conn, g.peers)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() { s.read(ctx, &wg) })
	}
	wg.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		evicted := s.peers.evicted.Load()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				s.peers.sweep(now)
				if n := s.peers.evicted.Load(); n != evicted {
					g.log.Warn("coap: the peer table is full; peers silent longest are being forgotten (a flood from many source addresses, or coap.max_peers below the fleet)",
						"evicted", n-evicted, "max_peers", s.peers.capacity())
					evicted = n
				}
			}
		}
	})
	<-ctx.Done()
	conn.Close()
	wg.Wait()
	return nil
}

// read reads datagrams and hands each to a goroutine of its own: a
// registration may wait for etcd, and must not hold up the reports behind
// it. At most maxInFlight are handled at once; beyond, reading waits and
// datagrams queue in the socket's buffer (coap.read_buffer).
func (s *udpServer) read(ctx context.Context, wg *sync.WaitGroup) {
	buf := make([]byte, maxDatagram)
	for {
		n, peer, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.g.log.Debug("coap: read", "err", err)
			continue
		}
		if !s.receive(buf[:n], peer, time.Now()) {
			continue
		}
		data := bytes.Clone(buf[:n])
		s.inFlight <- struct{}{}
		wg.Go(func() {
			defer func() { <-s.inFlight }()
			s.datagram(ctx, data, peer)
		})
	}
}

// receive decides, in the read loop and before anything is copied or
// parsed, whether a datagram is handled. What the gateway would ignore
// anyway is dropped here without touching the peer table (RFC 7252 3: a
// datagram shorter than a header or of another version; 4.2: ACKs and
// resets, since the gateway sends no confirmable message). The rest costs
// its peer a token; over the rate, a confirmable request is answered 4.29
// at most once a second and everything else is dropped.
func (s *udpServer) receive(data []byte, peer netip.AddrPort, now time.Time) bool {
	if len(data) < 4 || data[0]>>6 != 1 {
		return false
	}
	typ := message.Type(data[0] >> 4 & 3)
	if typ == message.Acknowledgement || typ == message.Reset {
		return false
	}
	tkl, request := confirmableRequest(data)
	switch s.peers.admit(peer, now, request) {
	case admitHandle:
		return true
	case admitRefuse:
		s.g.rateRefused.Add(1)
		s.g.tooMany(s, data, tkl, peer)
	default:
		s.g.rateDropped.Add(1)
	}
	return false
}

// confirmableRequest reports, from its header alone, whether a datagram is
// a confirmable request, and its token length.
func confirmableRequest(data []byte) (tkl int, ok bool) {
	if len(data) < 4 {
		return 0, false
	}
	tkl = int(data[0] & 0xf)
	return tkl, data[0]>>6 == 1 && message.Type(data[0]>>4&3) == message.Confirmable &&
		codes.Code(data[1]) != codes.Empty && data[1] < 32 && tkl <= message.MaxTokenSize && len(data) >= 4+tkl
}

// tooMany answers a confirmable request over its peer's rate with 4.29
// (RFC 8516), piggy-backed, from its header alone. Its Max-Age is about
// the time the peer's bucket takes to fill again.
func (g *Gateway) tooMany(t transport, data []byte, tkl int, peer netip.AddrPort) {
	m := pool.NewMessage(context.Background())
	m.SetType(message.Confirmable)
	m.SetMessageID(int32(data[2])<<8 | int32(data[3]))
	m.SetToken(data[4 : 4+tkl])
	cfg := g.cfg
	a := diagnostic(codes.TooManyRequests, "busy: over %v requests a second from this address or DTLS session; retry after Max-Age", cfg.MaxPeerRate)
	refill := min(time.Hour, time.Duration(float64(cfg.MaxPeerBurst)/cfg.MaxPeerRate*float64(time.Second)))
	a.opts = []message.Option{maxAge(refill)}
	if resp, err := encode(t, m, a); err == nil {
		t.write(resp, peer)
	}
}

// transport is where the datagrams of one path come from and their answers
// go: the plain-UDP read loop, for any peer, or one DTLS session, whose
// peer is always the same.
type transport interface {
	write(b []byte, peer netip.AddrPort)
	// begin and end bracket a confirmable request, as peerTable's do.
	begin(peer netip.AddrPort, mid int32, now time.Time) (again []byte, drop bool)
	end(peer netip.AddrPort, mid int32, resp []byte)
	// nextMID is the message id of a message the gateway starts (a NON
	// answer to a NON request).
	nextMID() int32
	// endSession closes the transport after the answer just written, when
	// it is a session.
	endSession()
}

func (s *udpServer) begin(peer netip.AddrPort, mid int32, now time.Time) ([]byte, bool) {
	return s.peers.begin(peer, mid, now)
}

func (s *udpServer) end(peer netip.AddrPort, mid int32, resp []byte) { s.peers.end(peer, mid, resp) }
func (s *udpServer) nextMID() int32                                  { return int32(uint16(s.msgID.Add(1))) }
func (s *udpServer) endSession()                                     {}

func (s *udpServer) write(b []byte, peer netip.AddrPort) {
	if _, err := s.out.WriteToUDPAddrPort(b, peer); err != nil {
		s.g.log.Debug("coap: write", "peer", peer.String(), "err", err)
	}
}

func (s *udpServer) datagram(ctx context.Context, data []byte, peer netip.AddrPort) {
	s.g.datagram(ctx, s, data, peer)
}

// datagram handles one datagram from peer, received on t.
func (g *Gateway) datagram(ctx context.Context, t transport, data []byte, peer netip.AddrPort) {
	m := messages.AcquireMessage(ctx)
	defer messages.ReleaseMessage(m)
	if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, data); err != nil {
		// A confirmable message that cannot be parsed is rejected with a
		// reset (RFC 7252 4.2); anything else unparseable is ignored.
		if len(data) >= 4 && data[0]>>6 == 1 && (data[0]>>4)&3 == 0 {
			reset(t, int32(data[2])<<8|int32(data[3]), peer)
		}
		return
	}
	switch {
	case m.Type() == message.Acknowledgement || m.Type() == message.Reset:
		return // the gateway sends no confirmable message of its own
	case m.Code() == codes.Empty:
		if m.Type() == message.Confirmable { // a ping
			reset(t, m.MessageID(), peer)
		}
		return
	case m.Code() >= 32: // a response where a request belongs
		if m.Type() == message.Confirmable {
			reset(t, m.MessageID(), peer)
		}
		return
	}
	if bad := netclient.GetUnknownCriticalOptions(m.Options()); len(bad) > 0 {
		// RFC 7252 5.4.1, as go-coap's servers answer it.
		if resp, err := encode(t, m, diagnostic(codes.BadOption, "%s", netclient.FormatUnknownCriticalOptionsDiagnostic(bad))); err == nil {
			t.write(resp, peer)
		}
		return
	}
	con, mid := m.Type() == message.Confirmable, m.MessageID()
	if con {
		again, drop := t.begin(peer, mid, time.Now())
		if drop {
			return
		}
		if again != nil {
			t.write(again, peer)
			return
		}
	}
	_, a, done := g.serve(&mux.Message{Message: m}, net.UDPAddrFromAddrPort(peer))
	resp, err := encode(t, m, a)
	done() // before the answer leaves, as with go-coap's servers
	if err != nil {
		g.log.Error("coap: cannot encode an answer", "err", err)
		return
	}
	if con { // before the answer leaves: its retransmission must find it
		t.end(peer, mid, resp)
	}
	t.write(resp, peer)
	if a.endSession {
		t.endSession()
	}
}

// messages are the requests being decoded and handled, reused: a new
// go-coap message costs about 1.5 KiB, two of them a datagram when the
// answer was one too (docs/benchmarks.md, "Ingest over DTLS").
var messages = pool.New(4096, 2048)

// encode makes the answer to request m: piggy-backed on the ACK of a
// confirmable request, a NON answer to a NON one (RFC 7252 5.2). It is
// encoded straight from a message.Message into a buffer of its size.
func encode(t transport, m *pool.Message, a answer) ([]byte, error) {
	r := message.Message{Code: a.code, Token: m.Token(), Type: message.Acknowledgement, MessageID: m.MessageID(), Payload: a.payload}
	if m.Type() != message.Confirmable {
		r.Type, r.MessageID = message.NonConfirmable, t.nextMID()
	}
	r.Options = make(message.Options, 0, len(a.opts)+1)
	for _, o := range a.opts {
		r.Options = r.Options.Add(o) // Location-Path repeats, in order
	}
	if a.payload != nil {
		var cf [4]byte
		n, _ := message.EncodeUint32(cf[:], uint32(a.format))
		r.Options = r.Options.Add(message.Option{ID: message.ContentFormat, Value: cf[:n]})
	}
	size, err := coder.DefaultCoder.Size(r)
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	n, err := coder.DefaultCoder.Encode(r, b)
	return b[:n], err
}

// reset sends a reset for message id mid.
func reset(t transport, mid int32, peer netip.AddrPort) {
	buf := make([]byte, 4)
	if n, err := coder.DefaultCoder.Encode(message.Message{Code: codes.Empty, Type: message.Reset, MessageID: mid}, buf); err == nil {
		t.write(buf[:n], peer)
	}
}
