package gateway

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// The plain-UDP read loop keeps a little state per peer (a source address
// and port): its rate limit and its last exchange. Anyone can send a
// datagram from any address, so that state is capped at coap.max_peers
// entries: a flood from millions of spoofed source ports evicts the peers
// silent longest instead of growing the heap. A device whose entry was
// evicted loses nothing it needs: its next datagram starts a full bucket,
// and a retransmission of its last request is handled again, which the
// protocol allows (reports are idempotent by seq, registrations by
// nature).

// exchange is a peer's last confirmable request and its answer. The zero
// exchange matches no message id: its at is older than exchangeLifetime.
type exchange struct {
	mid  int32
	busy bool   // being handled: a retransmission meanwhile is dropped
	resp []byte // the encoded answer, once sent
	at   time.Time
}

// peer is what the read loop keeps of one source address and port.
type peer struct {
	addr netip.AddrPort
	// prev and next link the peers of a shard from the one silent longest
	// to the one heard last.
	prev, next *peer
	seen       time.Time // its last datagram
	limit      *rate.Limiter
	refused    time.Time // its last 4.29 for going over its rate
	last       exchange
}

// verdict is what becomes of a datagram under its peer's rate limit.
type verdict int

const (
	admitHandle verdict = iota // within the rate
	admitRefuse                // over it: answer 4.29
	admitDrop                  // over it: say nothing
)

// refuseEvery spaces the 4.29s a peer over its rate gets: the rest of its
// datagrams are dropped, so that a flood is not answered in kind.
const refuseEvery = time.Second

// evictScan bounds how many busy peers eviction passes over to find an
// idle one.
const evictScan = 64

// peerTable holds the peers' state in shards, to keep the read loops and
// handlers apart, each shard holding at most perShard peers.
type peerTable struct {
	seed     maphash.Seed
	shards   []peerShard
	perShard int
	rate     rate.Limit
	burst    int
	evicted  atomic.Uint64
}

type peerShard struct {
	sync.Mutex
	m map[netip.AddrPort]*peer
	// oldest and newest are the ends of the list of peers by their last
	// datagram.
	oldest, newest *peer
}

// maxShards spreads the table's locks; a table of few peers has fewer
// shards, so that each still holds enough to evict the right one.
const maxShards = 64

// newPeerTable makes a table of at most size peers (size ≥ 1), each
// allowed perSecond datagrams a second in bursts of burst.
func newPeerTable(size int, perSecond float64, burst int) *peerTable {
	n := min(maxShards, max(1, size/256))
	t := &peerTable{seed: maphash.MakeSeed(), shards: make([]peerShard, n), perShard: size / n, rate: rate.Limit(perSecond), burst: burst}
	for i := range t.shards {
		t.shards[i].m = make(map[netip.AddrPort]*peer)
	}
	return t
}

func (t *peerTable) shard(addr netip.AddrPort) *peerShard {
	return &t.shards[maphash.Comparable(t.seed, addr)%uint64(len(t.shards))]
}

// admit takes a token from addr's bucket. Over the rate, a confirmable
// request is refused when the peer got no 4.29 in the last second, and
// anything else is dropped.
func (t *peerTable) admit(addr netip.AddrPort, now time.Time, con bool) verdict {
	s := t.shard(addr)
	s.Lock()
	defer s.Unlock()
	p := t.touch(s, addr, now)
	switch {
	case p.limit.AllowN(now, 1):
		return admitHandle
	case con && now.Sub(p.refused) >= refuseEvery:
		p.refused = now
		return admitRefuse
	}
	return admitDrop
}

// begin starts handling a confirmable request. It returns the answer to
// send again for a retransmission of the last exchange, drop for a
// retransmission still being handled, or neither for a new request.
func (t *peerTable) begin(addr netip.AddrPort, mid int32, now time.Time) (again []byte, drop bool) {
	s := t.shard(addr)
	s.Lock()
	defer s.Unlock()
	p := t.touch(s, addr, now)
	if e := p.last; e.mid == mid && now.Sub(e.at) < exchangeLifetime {
		return e.resp, e.busy
	}
	p.last = exchange{mid: mid, busy: true, at: now}
	return nil, false
}

// end records the answer of a request begin started, unless the peer was
// evicted meanwhile.
func (t *peerTable) end(addr netip.AddrPort, mid int32, resp []byte) {
	s := t.shard(addr)
	s.Lock()
	defer s.Unlock()
	if p := s.m[addr]; p != nil && p.last.mid == mid && p.last.busy {
		p.last.busy, p.last.resp = false, resp
	}
}

// touch returns addr's peer, made when new, as the one heard last. A full
// shard first evicts the peer silent longest that has no request in hand,
// or, when the first evictScan all have one, the one silent longest. s is
// locked.
func (t *peerTable) touch(s *peerShard, addr netip.AddrPort, now time.Time) *peer {
	p := s.m[addr]
	if p == nil {
		if len(s.m) >= t.perShard {
			victim := s.oldest
			for q, i := s.oldest, 0; q != nil && i < evictScan; q, i = q.next, i+1 {
				if !q.last.busy {
					victim = q
					break
				}
			}
			s.remove(victim)
			t.evicted.Add(1)
		}
		p = &peer{addr: addr, limit: rate.NewLimiter(t.rate, t.burst)}
		s.m[addr] = p
	} else {
		s.unlink(p)
	}
	p.seen = now
	p.prev, p.next = s.newest, nil
	if s.newest != nil {
		s.newest.next = p
	} else {
		s.oldest = p
	}
	s.newest = p
	return p
}

// sweep forgets the peers silent for exchangeLifetime: their last
// exchange is over and their bucket is full again.
func (t *peerTable) sweep(now time.Time) {
	for i := range t.shards {
		s := &t.shards[i]
		s.Lock()
		for p := s.oldest; p != nil && now.Sub(p.seen) >= exchangeLifetime; {
			next := p.next
			if !p.last.busy {
				s.remove(p)
			}
			p = next
		}
		s.Unlock()
	}
}

// len is the number of peers held.
func (t *peerTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.Lock()
		n += len(s.m)
		s.Unlock()
	}
	return n
}

// capacity is the most peers the table holds: coap.max_peers, rounded
// down to a multiple of the shards.
func (t *peerTable) capacity() int { return t.perShard * len(t.shards) }

func (s *peerShard) remove(p *peer) {
	s.unlink(p)
	delete(s.m, p.addr)
}

func (s *peerShard) unlink(p *peer) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		s.oldest = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		s.newest = p.prev
	}
	p.prev, p.next = nil, nil
}
