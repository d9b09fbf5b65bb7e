package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/medfleet/medfleet/coap"
)

// noCredentials knows no device.
type noCredentials struct{}

func (noCredentials) PSK(string) ([]byte, error) { return nil, errors.New("no such device") }
func (noCredentials) VerifyCertificate(*x509.Certificate) (string, uint64, error) {
	return "", 0, errors.New("no such device")
}
func (noCredentials) Generation(string) (uint64, bool) { return 0, false }
func (noCredentials) Current(string, uint64) bool      { return false }

// clientHello returns the first flight of a device's handshake: what a
// peer that never finishes one sends.
func clientHello(t *testing.T) []byte {
	t.Helper()
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	c, err := net.DialUDP("udp", nil, sink.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(c), c.RemoteAddr(),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return []byte("0123456789abcdef"), nil }),
		piondtls.WithPSKIdentityHint([]byte("pump-1")),
		piondtls.WithCipherSuites(coap.CipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = dc.HandshakeContext(ctx) }()
	defer func() { cancel(); <-done; dc.Close() }()
	b := make([]byte, 2048)
	sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := sink.ReadFromUDP(b)
	if err != nil {
		t.Fatalf("no ClientHello: %v", err)
	}
	return b[:n]
}

// TestDTLSHalfOpenHandshakes: ClientHellos from peers that never finish
// the handshake hold server state only until coap.handshake_timeout, and
// only as many as coap.max_handshakes_per_second admits. It logs what
// one such peer costs, which bounds the DTLS side's memory for unknown
// peers at rate × timeout of those.
func TestDTLSHalfOpenHandshakes(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for handshakes to time out")
	}
	const (
		peers   = 400
		rate    = 200 // a second, and the burst
		timeout = 3 * time.Second
	)
	cfg := DefaultConfig()
	cfg.MaxHandshakeRate = rate
	raddr, reader := startDTLSGateway(t, cfg, failing{}, noCredentials{}, timeout)
	hello := clientHello(t)

	// heap is the heap in use and the goroutines' stacks.
	heap := func() (uint64, int) {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc + ms.StackInuse, runtime.NumGoroutine()
	}
	heap0, goroutines0 := heap()
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for range peers {
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(hello); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond) // within the listener's accept backlog
	}
	sending := time.Since(start)
	time.Sleep(timeout / 4)
	heap1, goroutines1 := heap()

	counts := func() map[string]int64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "medfleet.coap.dtls.handshakes" {
					for _, dp := range s.DataPoints {
						v, _ := dp.Attributes.Value("result")
						got[v.AsString()] += dp.Value
					}
				}
			}
		}
		return got
	}
	deadline := time.Now().Add(timeout + 5*time.Second)
	for {
		if _, n := heap(); n <= goroutines0+5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the last ClientHello: %d goroutines, %d before: the half-open handshakes did not end",
				timeout+5*time.Second, runtime.NumGoroutine(), goroutines0)
		}
		time.Sleep(100 * time.Millisecond)
	}
	heap2, _ := heap()
	c := counts()
	admitted := c["failed"]
	if most := rate + int64(rate*sending.Seconds()) + 10; admitted < 1 || admitted > most || admitted+c["throttled"] > peers {
		t.Errorf("%d of %d ClientHellos admitted in %v, %d throttled; want 1 to %d admitted, the rest throttled or dropped", admitted, peers, sending, c["throttled"], most)
	}
	t.Logf("%d of %d ClientHellos admitted in %v: %d B of heap and stacks and %.1f goroutines each while half-open; after the handshake timeout %d B above the start",
		admitted, peers, sending.Round(time.Millisecond), (int64(heap1)-int64(heap0))/max(1, admitted), float64(goroutines1-goroutines0)/float64(max(1, admitted)), int64(heap2)-int64(heap0))
}
