package gateway

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

func addrPort(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(1024+i))
}

func TestExchangesForget(t *testing.T) {
	x := newPeerTable(16, 1000, 2000)
	now := time.Now()
	peer := addrPort(1)
	if again, drop := x.begin(peer, 1, now); again != nil || drop {
		t.Fatal("a new exchange is not a retransmission")
	}
	if _, drop := x.begin(peer, 1, now); !drop {
		t.Error("a retransmission while the first is handled is dropped")
	}
	x.end(peer, 1, []byte("answer"))
	if again, _ := x.begin(peer, 1, now.Add(time.Minute)); string(again) != "answer" {
		t.Errorf("a retransmission gets %q, want the remembered answer", again)
	}
	if again, drop := x.begin(peer, 1, now.Add(exchangeLifetime)); again != nil || drop {
		t.Errorf("the same message id after the exchange lifetime = %q, %v; want a new exchange", again, drop)
	}
	x.end(peer, 1, []byte("second answer"))
	x.sweep(now.Add(2 * exchangeLifetime))
	if n := x.len(); n != 0 {
		t.Errorf("%d peers after their lifetime, want 0", n)
	}
}

// TestPeerRateLimit: a peer gets its burst, then one 4.29 a second for its
// confirmable requests and silence for the rest, then its rate back.
func TestPeerRateLimit(t *testing.T) {
	const perSecond, burst = 10, 20
	x := newPeerTable(16, perSecond, burst)
	p, other := addrPort(1), addrPort(2)
	now := time.Now()
	count := func(n int, con bool) map[verdict]int {
		got := map[verdict]int{}
		for range n {
			got[x.admit(p, now, con)]++
		}
		return got
	}
	step := func(name string, got map[verdict]int, want map[verdict]int) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: verdicts %v, want %v (0 handled, 1 refused, 2 dropped)", name, got, want)
		}
	}
	step("the burst", count(burst, true), map[verdict]int{admitHandle: burst})
	step("over it, confirmable", count(5, true), map[verdict]int{admitRefuse: 1, admitDrop: 4})
	step("over it, non-confirmable", count(3, false), map[verdict]int{admitDrop: 3})
	if v := x.admit(other, now, true); v != admitHandle {
		t.Errorf("another peer at the same instant: %v, want admitHandle: the limit is per peer", v)
	}

	now = now.Add(refuseEvery / 2)
	step("half a second on: 5 tokens back, then no 4.29 yet", count(6, true), map[verdict]int{admitHandle: 5, admitDrop: 1})
	now = now.Add(refuseEvery / 2)
	step("a second after the 4.29: 5 more, and a 4.29 again", count(7, true), map[verdict]int{admitHandle: 5, admitRefuse: 1, admitDrop: 1})

	now = now.Add(burst * time.Second / perSecond)
	step("after the time to refill: the burst again", count(burst+1, false), map[verdict]int{admitHandle: burst, admitDrop: 1})
}

// TestPeerTableCap: a full table forgets the peer silent longest, passing
// over peers with a request in hand, and never holds more than its size.
func TestPeerTableCap(t *testing.T) {
	const size = 4
	x := newPeerTable(size, 1000, 2000)
	if got := x.capacity(); got != size {
		t.Fatalf("capacity() = %d, want %d", got, size)
	}
	now := time.Now()
	for i := range size {
		x.admit(addrPort(i), now.Add(time.Duration(i)*time.Second), false)
	}
	// Peer 0 is the oldest but has a request in hand; peer 1 is next.
	x.begin(addrPort(0), 7, now.Add(10*time.Second))
	x.admit(addrPort(2), now.Add(11*time.Second), false) // 2 heard again: 1 and 3 are silent longest, 1 first
	x.admit(addrPort(0), now.Add(12*time.Second), false) // 0 heard last, still busy
	x.begin(addrPort(0), 7, now.Add(12*time.Second))     // a retransmission: still busy

	held := func() map[netip.AddrPort]bool {
		m := map[netip.AddrPort]bool{}
		for i := range x.shards {
			for p := range x.shards[i].m {
				m[p] = true
			}
		}
		return m
	}
	x.admit(addrPort(10), now.Add(13*time.Second), false)
	if h := held(); h[addrPort(1)] || !h[addrPort(0)] || !h[addrPort(2)] || !h[addrPort(3)] || !h[addrPort(10)] {
		t.Errorf("after a fifth peer: held %v, want 1 evicted (silent longest)", h)
	}
	x.admit(addrPort(11), now.Add(14*time.Second), false)
	if h := held(); h[addrPort(3)] || !h[addrPort(0)] {
		t.Errorf("after a sixth peer: held %v, want 3 evicted next", h)
	}
	// Make 0 the oldest of all while it is busy: it is passed over.
	x.admit(addrPort(2), now.Add(15*time.Second), false)
	x.admit(addrPort(10), now.Add(15*time.Second), false)
	x.admit(addrPort(11), now.Add(15*time.Second), false)
	x.admit(addrPort(12), now.Add(16*time.Second), false)
	if h := held(); !h[addrPort(0)] || h[addrPort(2)] {
		t.Errorf("with the busy peer oldest: held %v, want 2 evicted and 0 kept", h)
	}
	if again, drop := x.begin(addrPort(0), 7, now.Add(17*time.Second)); again != nil || !drop {
		t.Errorf("the busy peer's retransmission = %q, %v; want it dropped: its exchange was kept", again, drop)
	}
	if n, e := x.len(), x.evicted.Load(); n != size || e != 3 {
		t.Errorf("len() = %d, evicted %d; want %d and 3", n, e, size)
	}

	// When every peer is busy, the one silent longest goes all the same.
	for i := 20; i < 20+size; i++ {
		x.begin(addrPort(i), 1, now.Add(time.Duration(i)*time.Second))
	}
	x.begin(addrPort(99), 1, now.Add(99*time.Second))
	if h := held(); h[addrPort(20)] || len(h) != size {
		t.Errorf("all busy: held %v, want %d without the oldest (20)", h, size)
	}
}

// TestPeerTableFlood: a million source ports keep the table at its size,
// in shards, and in bounded memory.
func TestPeerTableFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a million datagrams")
	}
	const size = 10_000
	x := newPeerTable(size, 1000, 2000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	now := time.Now()
	for i := range 1_000_000 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(i))
		x.admit(a, now, false)
		x.begin(a, int32(i&0xffff), now)
		x.end(a, int32(i&0xffff), make([]byte, 40))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := x.len(); n > size || n < size*9/10 {
		t.Errorf("len() = %d after a million peers, want at most %d (and near it)", n, size)
	}
	perPeer := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(x.len())
	t.Logf("%d peers held, %d evicted, %d B of heap each", x.len(), x.evicted.Load(), perPeer)
	if perPeer > 1024 {
		t.Errorf("%d B of heap a peer, want under 1 KiB", perPeer)
	}
}
