package gateway

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/medfleet/medfleet/coap"
)

// counting answers reports 2.04 and counts how many reached it.
type counting struct {
	failing
	reports atomic.Int32
}

func (c *counting) Report(context.Context, string, *coap.Report) (*coap.Desired, bool, error) {
	c.reports.Add(1)
	return &coap.Desired{}, false, nil
}

// rawPeer speaks datagrams to the gateway, as a device's stack would.
type rawPeer struct {
	t    *testing.T
	conn *net.UDPConn
}

func dialRaw(t *testing.T, addr string) *rawPeer {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{t: t, conn: conn}
}

func (p *rawPeer) send(m message.Message) {
	p.t.Helper()
	b := make([]byte, 1500)
	n, err := coder.DefaultCoder.Encode(m, b)
	if err != nil {
		p.t.Fatal(err)
	}
	p.sendRaw(b[:n])
}

func (p *rawPeer) sendRaw(b []byte) {
	p.t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next datagram decoded, or ok false after a second.
func (p *rawPeer) recv() (m message.Message, ok bool) {
	p.t.Helper()
	b := make([]byte, 1500)
	p.conn.SetReadDeadline(time.Now().Add(time.Second))
	n, err := p.conn.Read(b)
	if err != nil {
		return m, false
	}
	m.Options = make(message.Options, 0, 16)
	if _, err := coder.DefaultCoder.Decode(b[:n], &m); err != nil {
		p.t.Fatalf("undecodable answer: %v", err)
	}
	return m, true
}

func report(mid int32, typ message.Type) message.Message {
	body, _ := coap.EncodePack(coap.FormatSenMLJSON, (&coap.Report{Seq: 1}).Pack())
	opts := message.Options{}
	buf := make([]byte, 256)
	opts, _, _ = opts.SetPath(buf, "/dp")
	opts, _, _ = opts.AddString(buf[len(buf)-64:], message.URIQuery, "ep=pump-1")
	opts, _, _ = opts.SetContentFormat(buf[len(buf)-8:], coap.FormatSenMLJSON)
	return message.Message{Code: codes.POST, Type: typ, MessageID: mid, Token: []byte{1, 2, 3, 4}, Options: opts, Payload: body}
}

// TestPlainUDPMessageLayer checks the read loop's message layer (RFC 7252
// section 4): piggy-backed ACKs, a retransmission answered from the last
// exchange without being handled twice, NON for NON, resets for pings
// and for what cannot be parsed, 4.02 for unknown critical options.
func TestPlainUDPMessageLayer(t *testing.T) {
	b := &counting{}
	p := dialRaw(t, serve(t, b))

	p.send(report(100, message.Confirmable))
	first, ok := p.recv()
	if !ok || first.Type != message.Acknowledgement || first.MessageID != 100 || first.Code != codes.Changed || string(first.Token) != "\x01\x02\x03\x04" {
		t.Fatalf("answer to a CON report: %v (%v)", first, ok)
	}
	p.send(report(100, message.Confirmable)) // a retransmission
	again, ok := p.recv()
	if !ok || again.MessageID != 100 || again.Code != codes.Changed {
		t.Fatalf("answer to the retransmission: %v (%v)", again, ok)
	}
	if n := b.reports.Load(); n != 1 {
		t.Errorf("the backend saw %d reports, want 1: a retransmission is answered, not handled again", n)
	}
	p.send(report(101, message.Confirmable))
	if m, ok := p.recv(); !ok || m.MessageID != 101 || b.reports.Load() != 2 {
		t.Errorf("a new message id: %v (%v), %d reports", m, ok, b.reports.Load())
	}

	p.send(report(102, message.NonConfirmable))
	if m, ok := p.recv(); !ok || m.Type != message.NonConfirmable || m.Code != codes.Changed || string(m.Token) != "\x01\x02\x03\x04" {
		t.Errorf("answer to a NON report: %v (%v)", m, ok)
	}

	p.send(message.Message{Code: codes.Empty, Type: message.Confirmable, MessageID: 103}) // a ping
	if m, ok := p.recv(); !ok || m.Type != message.Reset || m.MessageID != 103 {
		t.Errorf("answer to a ping: %v (%v)", m, ok)
	}

	p.sendRaw([]byte{0x40, 0x02, 0x00, 0x68, 0xff}) // CON, mid 104, a payload marker and no payload
	if m, ok := p.recv(); !ok || m.Type != message.Reset || m.MessageID != 104 {
		t.Errorf("answer to a malformed CON: %v (%v)", m, ok)
	}
	p.sendRaw([]byte{0x50, 0x02, 0x00, 0x69, 0xff}) // the same as NON: ignored
	if m, ok := p.recv(); ok {
		t.Errorf("answer to a malformed NON: %v", m)
	}

	bad := report(105, message.Confirmable)
	bad.Options = bad.Options.Add(message.Option{ID: 9, Value: []byte{1}}) // an unknown critical option
	p.send(bad)
	if m, ok := p.recv(); !ok || m.Code != codes.BadOption || string(m.Payload) != "unknown critical option(s): 9" {
		t.Errorf("answer to an unknown critical option: %v %q (%v)", m, m.Payload, ok)
	}
}
