package fault

import (
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// direction is the way a datagram goes through the proxy.
type direction int

const (
	upstream   direction = iota // device to server
	downstream                  // server to device
)

func (d direction) String() string { return [...]string{"upstream", "downstream"}[d] }

// faults is what the network does to the datagrams of one direction. The
// probabilities are independent: a datagram may be both duplicated and
// held back.
type faults struct {
	Drop      float64 // lost
	Duplicate float64 // sent twice
	Reorder   float64 // held back by 20 to 200 ms, so that later ones overtake it
	// Delay holds back every datagram by this much: a slow link.
	Delay time.Duration
}

// proxyStats counts what the proxy did, by direction.
type proxyStats struct {
	Forwarded, Dropped, Duplicated, Reordered [2]int64
	// Unrouted datagrams found no healthy backend and were dropped.
	Unrouted int64
	// Moves counts devices sent to another backend than their previous
	// datagram's, because a backend went down or came back.
	Moves int64
	// PerBackend counts the datagrams sent to each backend.
	PerBackend []int64
}

// proxy stands between the devices and the replicas: a load balancer that
// routes each device (its address) to one healthy backend by a hash, and a
// lossy network whose faults the test sets while it runs. It listens on
// loopback only.
type proxy struct {
	front    *net.UDPConn
	backends []*backend
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	logf     func(format string, args ...any)

	forwarded, dropped, duplicated, reordered [2]atomic.Int64
	unrouted, moves                           atomic.Int64

	mu       sync.Mutex // guards what follows
	rnd      *rand.Rand
	faults   [2]faults
	sessions map[string]*session
}

// backend is one replica's plain CoAP address, healthy while its /healthz
// answers at all (see watch).
type backend struct {
	name      string
	addr      *net.UDPAddr
	healthURL string
	healthy   atomic.Bool
	sent      atomic.Int64
}

// session is one device address: the proxy talks to the backends from a
// socket of its own for each, so that answers find their way back.
type session struct {
	client *net.UDPAddr
	conn   *net.UDPConn
	last   atomic.Int32 // backend of the previous datagram, -1 before the first
}

// Health checking of backends.
const (
	healthEvery   = 500 * time.Millisecond
	healthTimeout = time.Second
)

// target is a backend as the proxy knows it: its plain CoAP address and
// its HTTP address, which serves /healthz.
type target struct {
	name, coap, http string
}

// startProxy listens on a loopback port and routes to the targets. Its
// faults are drawn from a source seeded with seed. It stops when the test
// ends.
func startProxy(t *testing.T, seed uint64, targets ...target) *proxy {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proxy{front: front, ctx: ctx, cancel: cancel, logf: t.Logf,
		rnd: rand.New(rand.NewPCG(seed, 0x70726f7879)), sessions: map[string]*session{}}
	for _, tg := range targets {
		addr, err := net.ResolveUDPAddr("udp", tg.coap)
		if err != nil {
			t.Fatal(err)
		}
		b := &backend{name: tg.name, addr: addr, healthURL: "http://" + tg.http + "/healthz"}
		b.healthy.Store(probe(ctx, b.healthURL) == nil)
		p.backends = append(p.backends, b)
	}
	for _, b := range p.backends {
		p.wg.Go(func() { p.watch(b) })
	}
	p.wg.Go(p.readFront)
	t.Cleanup(p.close)
	return p
}

// addr is where the devices send.
func (p *proxy) addr() string { return p.front.LocalAddr().String() }

// setFaults changes what the network does in direction d from now on.
func (p *proxy) setFaults(d direction, f faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[d] = f
}

// heal clears every fault.
func (p *proxy) heal() {
	p.setFaults(upstream, faults{})
	p.setFaults(downstream, faults{})
}

func (p *proxy) stats() proxyStats {
	var s proxyStats
	for d := range 2 {
		s.Forwarded[d] = p.forwarded[d].Load()
		s.Dropped[d] = p.dropped[d].Load()
		s.Duplicated[d] = p.duplicated[d].Load()
		s.Reordered[d] = p.reordered[d].Load()
	}
	s.Unrouted, s.Moves = p.unrouted.Load(), p.moves.Load()
	for _, b := range p.backends {
		s.PerBackend = append(s.PerBackend, b.sent.Load())
	}
	return s
}

// close stops every goroutine of the proxy and closes its sockets.
// Datagrams held back may still be sent into closed sockets; they are
// lost, as they would be.
func (p *proxy) close() {
	p.cancel()
	p.front.Close()
	p.mu.Lock()
	for _, s := range p.sessions {
		s.conn.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// probe returns nil when a /healthz answers at all within healthTimeout:
// a replica that answers 503 (its etcd is away) still serves devices.
func probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// watch checks a backend's health every healthEvery until the proxy
// closes. A refused connection (nothing listens: the process is gone)
// takes the backend out at once; a probe without an answer only when the
// one before it had none either, so that one slow answer on a busy
// machine does not move every device of a live backend. One answer puts
// it back.
func (p *proxy) watch(b *backend) {
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	failed := 0
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		err := probe(p.ctx, b.healthURL)
		if p.ctx.Err() != nil {
			return
		}
		if err == nil {
			failed = 0
		} else {
			failed++
		}
		ok := err == nil || (failed < 2 && !errors.Is(err, syscall.ECONNREFUSED))
		if b.healthy.Swap(ok) != ok {
			p.logf("proxy: backend %s healthy=%v (%v)", b.name, ok, err)
		}
	}
}

// route picks the backend of a device: the one its address hashes to if
// healthy, else the next healthy one. It returns -1 when none is.
func (p *proxy) route(client *net.UDPAddr) int {
	h := fnv.New32a()
	h.Write([]byte(client.String()))
	first := int(h.Sum32() % uint32(len(p.backends)))
	for i := range p.backends {
		b := (first + i) % len(p.backends)
		if p.backends[b].healthy.Load() {
			return b
		}
	}
	return -1
}

// session returns the session of a device address, opening it on its
// first datagram.
func (p *proxy) session(client *net.UDPAddr) (*session, error) {
	key := client.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.sessions[key]; ok {
		return s, nil
	}
	if p.ctx.Err() != nil {
		return nil, net.ErrClosed
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	s := &session{client: client, conn: conn}
	s.last.Store(-1)
	p.sessions[key] = s
	p.wg.Go(func() { p.readSession(s) })
	return s, nil
}

// readFront forwards what devices send to their backends.
func (p *proxy) readFront() {
	buf := make([]byte, 64<<10)
	for {
		n, client, err := p.front.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s, err := p.session(client)
		if err != nil {
			return
		}
		b := p.route(client)
		if b < 0 {
			p.unrouted.Add(1)
			continue
		}
		if prev := s.last.Swap(int32(b)); prev >= 0 && int(prev) != b {
			p.moves.Add(1)
		}
		be := p.backends[b]
		be.sent.Add(1)
		p.send(upstream, buf[:n], func(d []byte) { _, _ = s.conn.WriteToUDP(d, be.addr) })
	}
}

// readSession forwards what the backends answer to the device.
func (p *proxy) readSession(s *session) {
	buf := make([]byte, 64<<10)
	for {
		n, _, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.send(downstream, buf[:n], func(d []byte) { _, _ = p.front.WriteToUDP(d, s.client) })
	}
}

// send applies direction d's faults to one datagram and writes what is
// left of it with write, now or later.
func (p *proxy) send(d direction, data []byte, write func([]byte)) {
	p.mu.Lock()
	f := p.faults[d]
	drop := f.Drop > 0 && p.rnd.Float64() < f.Drop
	copies := 1
	if f.Duplicate > 0 && p.rnd.Float64() < f.Duplicate {
		copies = 2
	}
	var holds [2]time.Duration
	for i := range copies {
		holds[i] = f.Delay
		if f.Reorder > 0 && p.rnd.Float64() < f.Reorder {
			holds[i] += 20*time.Millisecond + time.Duration(p.rnd.Int64N(int64(180*time.Millisecond)))
		}
	}
	p.mu.Unlock()

	if drop {
		p.dropped[d].Add(1)
		return
	}
	p.forwarded[d].Add(1)
	if copies == 2 {
		p.duplicated[d].Add(1)
	}
	for _, hold := range holds[:copies] {
		if hold == 0 {
			write(data)
			continue
		}
		if hold > f.Delay {
			p.reordered[d].Add(1)
		}
		held := append([]byte(nil), data...)
		time.AfterFunc(hold, func() {
			if p.ctx.Err() == nil {
				write(held)
			}
		})
	}
}
