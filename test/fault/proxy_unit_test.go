package fault

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestProxy checks the proxy the scenarios rely on, with two echo servers
// as backends: a device sticks to one, each fault does what it says, and a
// dead backend's devices go to the other.
func TestProxy(t *testing.T) {
	var targets []target
	health := map[string]*httptest.Server{}
	for _, name := range []string{"a", "b"} {
		echo, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { echo.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := echo.ReadFromUDP(buf)
				if err != nil {
					return
				}
				echo.WriteToUDP(append([]byte(name+":"), buf[:n]...), from)
			}
		}()
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		t.Cleanup(hs.Close)
		health[name] = hs
		targets = append(targets, target{name: name, coap: echo.LocalAddr().String(), http: strings.TrimPrefix(hs.URL, "http://")})
	}
	p := startProxy(t, 1, targets...)
	dev, err := net.DialUDP("udp", nil, p.front.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	// exchange sends one datagram and returns the answers that come within
	// wait.
	exchange := func(msg string, wait time.Duration) []string {
		t.Helper()
		if _, err := dev.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		var got []string
		buf := make([]byte, 1500)
		dev.SetReadDeadline(time.Now().Add(wait))
		for {
			n, err := dev.Read(buf)
			if err != nil {
				return got
			}
			got = append(got, string(buf[:n]))
		}
	}

	first := exchange("1", 300*time.Millisecond)
	if len(first) != 1 || !strings.HasSuffix(first[0], ":1") {
		t.Fatalf("answers to 1 = %q, want one echo", first)
	}
	home := strings.TrimSuffix(first[0], ":1")
	for _, msg := range []string{"2", "3", "4"} {
		if got := exchange(msg, 300*time.Millisecond); len(got) != 1 || got[0] != home+":"+msg {
			t.Fatalf("answers to %s = %q, want %q: a device sticks to its backend", msg, got, home+":"+msg)
		}
	}

	p.setFaults(upstream, faults{Drop: 1})
	if got := exchange("5", 300*time.Millisecond); len(got) != 0 || p.stats().Dropped[upstream] != 1 {
		t.Errorf("with every datagram dropped: answers %q, %d dropped; want none, 1", got, p.stats().Dropped[upstream])
	}
	p.setFaults(upstream, faults{Duplicate: 1})
	if got := exchange("6", 300*time.Millisecond); len(got) != 2 {
		t.Errorf("with every datagram duplicated: answers %q, want two", got)
	}
	p.heal()
	p.setFaults(downstream, faults{Reorder: 1})
	sent := time.Now()
	if got := exchange("7", time.Second); len(got) != 1 || time.Since(sent) < 20*time.Millisecond || p.stats().Reordered[downstream] != 1 {
		t.Errorf("with every answer held back: answers %q after %v, %d held back; want one after 20 ms or more, 1",
			got, time.Since(sent), p.stats().Reordered[downstream])
	}
	p.heal()

	// The device's backend dies: its health check is refused, and the
	// device goes to the other.
	health[home].Close()
	var other string
	eventually(t, 5*time.Second, 100*time.Millisecond, "the device moved off its dead backend", func() (bool, string) {
		got := exchange("8", 300*time.Millisecond)
		if len(got) == 1 && !strings.HasPrefix(got[0], home+":") {
			other = got[0]
			return true, ""
		}
		return false, fmt.Sprint(got)
	})
	if p.stats().Moves != 1 {
		t.Errorf("after the move to %q: %d moves counted, want 1", other, p.stats().Moves)
	}
}
