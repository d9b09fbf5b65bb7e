package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/medfleet/medfleet/coap/gateway"
)

// serveBaseline runs a go-coap UDP server with one handler that answers
// 2.04 to every request, configured like medfleetd's gateway (socket
// buffer, idle timeout): what go-coap costs before Medfleet does anything.
func serveBaseline(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("medfleet-bench serve-baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:15701", "UDP address to serve")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	addr, err := net.ResolveUDPAddr("udp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "medfleet-bench: --listen: %v\n", err)
		return 2
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "medfleet-bench: %v\n", err)
		return 1
	}
	cfg := gateway.DefaultConfig()
	_ = conn.SetReadBuffer(cfg.ReadBuffer)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := udp.NewServer(
		options.WithMux(mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
			_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
		})),
		options.WithErrors(func(error) {}),
		options.WithInactivityMonitor(cfg.IdleTimeout, func(cc *udpclient.Conn) { _ = cc.Close() }),
	)
	done := make(chan error, 1)
	go func() { done <- s.Serve(coapnet.NewUDPConn("udp", conn)) }()
	select {
	case <-ctx.Done():
		s.Stop()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return 0
	case err := <-done:
		fmt.Fprintf(stderr, "medfleet-bench: serve: %v\n", err)
		return 1
	}
}
