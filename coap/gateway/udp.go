package gateway

import (
	"bytes"
	"context"
	"errors"
	"hash/maphash"
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
// DTLS stays on go-coap's server: its sessions need the handshake and the
// record layer go-coap and pion/dtls provide.

// exchangeLifetime is how long a peer's last exchange is remembered
// (RFC 7252 EXCHANGE_LIFETIME with the default transmission parameters).
const exchangeLifetime = 247 * time.Second

// maxDatagram bounds what is read of a datagram; a request larger than
// coap.MaxPayload is answered 4.13 by parseRequest.
const maxDatagram = 64 << 10

// exchange is a peer's last confirmable request and its answer.
type exchange struct {
	mid  int32
	busy bool   // being handled: a retransmission meanwhile is dropped
	resp []byte // the encoded answer, once sent
	at   time.Time
}

// exchanges remembers each peer's last exchange, in shards to keep the
// read loops apart.
type exchanges struct {
	seed   maphash.Seed
	shards [64]struct {
		sync.Mutex
		m map[netip.AddrPort]*exchange
	}
}

func newExchanges() *exchanges {
	x := &exchanges{seed: maphash.MakeSeed()}
	for i := range x.shards {
		x.shards[i].m = map[netip.AddrPort]*exchange{}
	}
	return x
}

func (x *exchanges) shard(peer netip.AddrPort) int {
	return int(maphash.Comparable(x.seed, peer) % uint64(len(x.shards)))
}

// begin starts handling a confirmable request. It returns the answer to
// send again for a retransmission of the last exchange, drop for a
// retransmission still being handled, or neither for a new request.
func (x *exchanges) begin(peer netip.AddrPort, mid int32, now time.Time) (again []byte, drop bool) {
	s := &x.shards[x.shard(peer)]
	s.Lock()
	defer s.Unlock()
	e := s.m[peer]
	if e != nil && e.mid == mid && now.Sub(e.at) < exchangeLifetime {
		return e.resp, e.busy
	}
	if e == nil {
		e = &exchange{}
		s.m[peer] = e
	}
	*e = exchange{mid: mid, busy: true, at: now}
	return nil, false
}

// end records the answer of a request begin started.
func (x *exchanges) end(peer netip.AddrPort, mid int32, resp []byte) {
	s := &x.shards[x.shard(peer)]
	s.Lock()
	defer s.Unlock()
	if e := s.m[peer]; e != nil && e.mid == mid {
		e.busy, e.resp = false, resp
	}
}

// sweep forgets exchanges older than exchangeLifetime.
func (x *exchanges) sweep(now time.Time) {
	for i := range x.shards {
		s := &x.shards[i]
		s.Lock()
		for p, e := range s.m {
			if !e.busy && now.Sub(e.at) >= exchangeLifetime {
				delete(s.m, p)
			}
		}
		s.Unlock()
	}
}

func (x *exchanges) len() int {
	n := 0
	for i := range x.shards {
		s := &x.shards[i]
		s.Lock()
		n += len(s.m)
		s.Unlock()
	}
	return n
}

// udpServer is the plain-UDP read loop.
type udpServer struct {
	g        *Gateway
	conn     *net.UDPConn
	seen     *exchanges
	msgID    atomic.Uint32 // for NON answers and resets
	inFlight chan struct{}
}

// maxInFlight bounds the datagrams being handled at once.
const maxInFlight = 4096

// serveUDP answers requests on conn with a read loop per CPU until ctx
// ends, then waits for the requests in hand.
func (g *Gateway) serveUDP(ctx context.Context, conn *net.UDPConn) error {
	s := &udpServer{g: g, conn: conn, seen: newExchanges(), inFlight: make(chan struct{}, maxInFlight)}
	s.msgID.Store(rand.Uint32())
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() { s.read(ctx, &wg) })
	}
	wg.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				s.seen.sweep(now)
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
		data := bytes.Clone(buf[:n])
		s.inFlight <- struct{}{}
		wg.Go(func() {
			defer func() { <-s.inFlight }()
			s.datagram(ctx, data, peer)
		})
	}
}

// datagram handles one datagram from peer.
func (s *udpServer) datagram(ctx context.Context, data []byte, peer netip.AddrPort) {
	m := pool.NewMessage(ctx)
	if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, data); err != nil {
		// A confirmable message that cannot be parsed is rejected with a
		// reset (RFC 7252 4.2); anything else unparseable is ignored.
		if len(data) >= 4 && data[0]>>6 == 1 && (data[0]>>4)&3 == 0 {
			s.reset(int32(data[2])<<8|int32(data[3]), peer)
		}
		return
	}
	switch {
	case m.Type() == message.Acknowledgement || m.Type() == message.Reset:
		return // the gateway sends no confirmable message of its own
	case m.Code() == codes.Empty:
		if m.Type() == message.Confirmable { // a ping
			s.reset(m.MessageID(), peer)
		}
		return
	case m.Code() >= 32: // a response where a request belongs
		if m.Type() == message.Confirmable {
			s.reset(m.MessageID(), peer)
		}
		return
	}
	if bad := netclient.GetUnknownCriticalOptions(m.Options()); len(bad) > 0 {
		// RFC 7252 5.4.1, as go-coap's servers answer it.
		if resp, err := s.encode(m, diagnostic(codes.BadOption, "%s", netclient.FormatUnknownCriticalOptionsDiagnostic(bad))); err == nil {
			s.write(resp, peer)
		}
		return
	}
	con, mid := m.Type() == message.Confirmable, m.MessageID()
	if con {
		again, drop := s.seen.begin(peer, mid, time.Now())
		if drop {
			return
		}
		if again != nil {
			s.write(again, peer)
			return
		}
	}
	_, a, done := s.g.serve(&mux.Message{Message: m}, net.UDPAddrFromAddrPort(peer))
	resp, err := s.encode(m, a)
	done() // before the answer leaves, as with go-coap's servers
	if err != nil {
		s.g.log.Error("coap: cannot encode an answer", "err", err)
		return
	}
	if con { // before the answer leaves: its retransmission must find it
		s.seen.end(peer, mid, resp)
	}
	s.write(resp, peer)
}

// encode makes the answer to request m: piggy-backed on the ACK of a
// confirmable request, a NON answer to a NON one (RFC 7252 5.2).
func (s *udpServer) encode(m *pool.Message, a answer) ([]byte, error) {
	r := pool.NewMessage(m.Context())
	r.SetCode(a.code)
	r.SetToken(m.Token())
	if m.Type() == message.Confirmable {
		r.SetType(message.Acknowledgement)
		r.SetMessageID(m.MessageID())
	} else {
		r.SetType(message.NonConfirmable)
		r.SetMessageID(int32(uint16(s.msgID.Add(1))))
	}
	for _, o := range a.opts {
		r.AddOptionBytes(o.ID, o.Value) // Location-Path repeats
	}
	if a.payload != nil {
		r.SetContentFormat(a.format)
		r.SetBody(bytes.NewReader(a.payload))
	}
	return r.MarshalWithEncoder(coder.DefaultCoder)
}

// reset sends a reset for message id mid.
func (s *udpServer) reset(mid int32, peer netip.AddrPort) {
	buf := make([]byte, 4)
	if n, err := coder.DefaultCoder.Encode(message.Message{Code: codes.Empty, Type: message.Reset, MessageID: mid}, buf); err == nil {
		s.write(buf[:n], peer)
	}
}

func (s *udpServer) write(b []byte, peer netip.AddrPort) {
	if _, err := s.conn.WriteToUDPAddrPort(b, peer); err != nil {
		s.g.log.Debug("coap: write", "peer", peer.String(), "err", err)
	}
}
