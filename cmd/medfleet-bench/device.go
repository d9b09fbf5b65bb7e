package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/medfleet/medfleet/coap"
)

// Outcomes of an exchange that carry no response.
var (
	errStopped = errors.New("stopped before an answer")                 // the run ended
	errTimeout = errors.New("no answer after the last retransmission")  // RFC 7252 4.2
	errReset   = errors.New("the server answered with a Reset message") // RST
	errClosed  = errors.New("the server closed the DTLS session")       // close_notify or a fatal alert
)

// packetConn is what a device needs of its connection: a connected UDP
// socket (*net.UDPConn), or a DTLS session over one (*piondtls.Conn), whose
// Read and Write carry one CoAP message each.
type packetConn interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// device is one simulated device: its own socket, one request at a time.
// Only its own goroutine touches it while it runs, but for stopConn.
type device struct {
	id  string
	idx int
	// conn is the device's socket, or its DTLS session: over DTLS nil
	// until the first handshake and after a session was dropped (dtls.go).
	// Only the device's goroutine changes it, under connMu, which stopConn
	// takes to close it from another goroutine.
	conn    packetConn
	connMu  sync.Mutex
	stopped bool // stopConn was called: open no more sessions
	cfg     *Config
	st      *stats
	rng     *rand.Rand

	// Over DTLS: the server's address, to dial a new socket for each
	// session, and the device's PSK (provisioned over gRPC).
	raddr *net.UDPAddr
	psk   []byte

	mid      uint16
	tokenSeq uint32
	tokenTag uint32
	out, in  []byte
	opts     message.Options // decoding space: Decode does not grow it

	registered bool
	holdUntil  time.Time // no request before this (Max-Age of a 4.29 or 5.03)
	tick       uint64    // ticks so far, sent or skipped: the device's own clock
	usage      float64   // cumulative in-use seconds
	nextSeq    uint64
	pending    *coap.Report // built, not yet acknowledged: resent unchanged

	acked          uint64
	lastAckedSeq   uint64
	lastAckedUsage float64
}

// newDevice makes a device; conn is nil over DTLS.
func newDevice(id string, idx int, conn packetConn, cfg *Config, st *stats) *device {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(idx)))
	return &device{
		id: id, idx: idx, conn: conn, cfg: cfg, st: st, rng: rng,
		mid: uint16(rng.Uint32()), tokenTag: rng.Uint32(),
		out: make([]byte, 2048), in: make([]byte, 2048), opts: make(message.Options, 0, 32),
		nextSeq:    1,
		registered: cfg.Baseline, // a bare server has no registrations
	}
}

// run sends a report every interval from first until the window ends,
// open loop: a tick that comes due while the device is still busy (waiting
// for an answer, registering, or holding off after a 4.29 or 5.03) is
// skipped and counted, never queued.
func (d *device) run(ctx context.Context, first time.Time, interval time.Duration, win *window) {
	defer d.stopConn()
	stop := context.AfterFunc(ctx, d.stopConn) // unblocks a Read
	defer stop()
	due := first
	for due.Before(win.End()) {
		if !sleepUntil(ctx, due) {
			return
		}
		if !due.Before(win.End()) {
			return // the window ended early while the device slept
		}
		inWin := win.has(due)
		if inWin {
			d.st.attempted.Add(1)
		}
		d.advance(interval)
		d.report(ctx, inWin)
		busy := time.Now()
		if d.holdUntil.After(busy) {
			busy = d.holdUntil
		}
		for due = due.Add(interval); due.Before(busy) && due.Before(win.End()); due = due.Add(interval) {
			if win.has(due) {
				d.st.attempted.Add(1)
				d.st.skipped.Add(1)
				d.st.phases.at(due).skipped.Add(1)
			}
			d.advance(interval)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// advance moves the device's own clock by one tick: it is in use for 80
// ticks out of 120 (shifted per device), and its usage counter grows then.
func (d *device) advance(interval time.Duration) {
	d.tick++
	if d.inUse() {
		d.usage += interval.Seconds()
	}
}

func (d *device) inUse() bool { return (d.tick+uint64(d.idx))%120 < 80 }

// report sends one report (the pending one, or a new one) and handles the
// answer. A 4.04 makes the device register again and resend it once.
func (d *device) report(ctx context.Context, inWin bool) {
	for attempt := 0; attempt < 2; attempt++ {
		if !d.registered && !d.register(ctx) {
			if inWin {
				d.st.skipped.Add(1) // busy registering
				d.st.phases.at(time.Now()).skipped.Add(1)
			}
			return
		}
		if d.pending == nil {
			d.pending = d.build()
		}
		payload, err := coap.EncodePack(coap.FormatSenMLCBOR, d.pending.Pack())
		if err != nil {
			panic(fmt.Sprintf("medfleet-bench: encoding a report: %v", err)) // a bug in build
		}
		ph := d.st.phases.at(time.Now()) // the phase of the first transmission
		resp, rtt, retrans, err := d.do(ctx, coap.PathData, []string{coap.QueryEndpoint + "=" + d.id}, coap.FormatSenMLCBOR, payload)
		if inWin {
			d.st.sent.Add(1)
			d.st.retransmissions.Add(uint64(retrans))
			ph.sent.Add(1)
			ph.retransmissions.Add(uint64(retrans))
		}
		switch {
		case errors.Is(err, errStopped):
			if inWin {
				d.st.unfinished.Add(1)
			}
			return
		case errors.Is(err, errTimeout):
			if inWin {
				d.st.timeouts.Add(1)
				ph.timeouts.Add(1)
			}
			return // resent unchanged at the next tick
		case errors.Is(err, errReset):
			if inWin {
				d.st.resets.Add(1)
			}
			return
		case err != nil:
			panic(fmt.Sprintf("medfleet-bench: %s: %v", d.id, err)) // a bug in exchange
		}
		if inWin {
			d.st.latency.Record(rtt)
			d.st.codes[resp.Code].Add(1)
			d.st.answered.Add(1)
			ph.latency.Record(rtt)
		}
		if d.cfg.Baseline { // a bare server: any answer will do
			d.pending = nil
			return
		}
		switch resp.Code {
		case codes.Changed:
			if inWin {
				d.st.acked.Add(1)
				ph.acked.Add(1)
			}
			d.acked++
			d.lastAckedSeq, d.lastAckedUsage = d.pending.Seq, *d.pending.Usage
			d.pending = nil
			return
		case codes.NotFound: // the registration is gone: register, resend
			d.registered = false
			d.st.reregistrations.Add(1)
			continue
		case codes.TooManyRequests, codes.ServiceUnavailable:
			d.holdOff(resp)
			return
		}
		if resp.Code < codes.InternalServerError {
			d.pending = nil // 4.00, 4.13, 4.15...: the server will never take it
		}
		return
	}
}

// holdOff makes the device wait for a response's Max-Age, when it has one.
func (d *device) holdOff(resp message.Message) {
	if age, err := resp.Options.GetUint32(message.MaxAge); err == nil {
		d.holdUntil = time.Now().Add(time.Duration(age) * time.Second)
		d.st.backoffs.Add(1)
	}
}

// register registers the device, retrying with backoff until it succeeds
// or the run ends.
func (d *device) register(ctx context.Context) bool {
	reg := d.registration()
	payload, err := reg.Encode(coap.FormatCBOR)
	if err != nil {
		panic(fmt.Sprintf("medfleet-bench: encoding a registration: %v", err))
	}
	query := []string{coap.QueryEndpoint + "=" + d.id, fmt.Sprintf("%s=%d", coap.QueryLifetime, d.cfg.Lifetime)}
	backoff := time.Second
	for {
		resp, _, _, err := d.do(ctx, coap.PathRegistration, query, coap.FormatCBOR, payload)
		if errors.Is(err, errStopped) {
			return false
		}
		if err == nil && resp.Code == codes.Created {
			d.st.registrations.Add(1)
			d.registered = true
			if des, err := coap.DecodeDesired(coap.FormatCBOR, resp.Payload); err == nil && des.Seq >= d.nextSeq {
				d.nextSeq = des.Seq + 1 // protocol 8.2: continue above what the server has
			}
			return true
		}
		d.st.registrationFailures.Add(1)
		wait := backoff/2 + time.Duration(d.rng.Int64N(int64(backoff))) // jittered
		backoff = min(2*backoff, 30*time.Second)
		if err == nil {
			if age, err := resp.Options.GetUint32(message.MaxAge); err == nil {
				wait = time.Duration(age) * time.Second
			}
		}
		if !sleepUntil(ctx, time.Now().Add(wait)) {
			return false
		}
	}
}

// registration is what the device registers with; provisioning over DTLS
// creates the device with the same profile, model and serial.
func (d *device) registration() *coap.Registration {
	model := "Bench " + d.cfg.Profile
	switch d.cfg.Profile {
	case coap.ProfileInfusionPump:
		model = "Bench IP-100"
	case coap.ProfileCPAP:
		model = "Bench CP-20"
	}
	return &coap.Registration{Profile: d.cfg.Profile, Model: model, Serial: fmt.Sprintf("SN%08d", d.idx), Firmware: "1.4.2"}
}

// build makes the next report: deterministic in the device's index and
// clock.
func (d *device) build() *coap.Report {
	usage := d.usage
	battery := float64(100 - (d.tick/60)%70)
	rssi := -45 - float64(d.idx%30)
	state := coap.StateIdle
	if d.inUse() {
		state = coap.StateInUse
	}
	alarm, metric, value := "fault", "temperature", 36.5+float64(d.idx%10)/10
	switch d.cfg.Profile {
	case coap.ProfileInfusionPump:
		alarm, metric, value = "occlusion", "rate", float64(25+d.idx%100) // mL/h
	case coap.ProfileCPAP:
		alarm, metric, value = "leak", "pressure", float64(8+d.idx%8) // cmH2O
	}
	r := &coap.Report{
		Seq:       d.nextSeq,
		Usage:     &usage,
		Firmware:  "1.4.2",
		State:     state,
		Battery:   &battery,
		WiFiBSSID: fmt.Sprintf("02:00:5e:00:00:%02x", d.idx%8),
		WiFiRSSI:  &rssi,
		Alarms:    map[string]float64{alarm: float64(d.tick / 500)},
		Telemetry: map[string]float64{metric: value},
	}
	d.nextSeq++
	return r
}

// do runs one exchange. Over plain CoAP it is exchange; over DTLS see
// dtls.go (doDTLS): a session first, and a new one after a lost one.
func (d *device) do(ctx context.Context, path string, query []string, format message.MediaType, payload []byte) (message.Message, time.Duration, int, error) {
	if !d.cfg.DTLS {
		return d.exchange(ctx, path, query, format, payload)
	}
	return d.doDTLS(ctx, path, query, format, payload)
}

// exchange sends a confirmable POST and waits for its response, with the
// retransmissions of RFC 7252 4.2: ACK_TIMEOUT times a random factor,
// doubled on every retransmission, at most MAX_RETRANSMIT of them. rtt runs
// from the first transmission, so retransmissions show in it. An empty ACK
// stops the retransmissions; the separate response that follows is
// acknowledged and returned. The response's payload and options point into
// d.in: use them before the next exchange. Over DTLS, a session the server
// closed ends the exchange at once with errClosed.
func (d *device) exchange(ctx context.Context, path string, query []string, format message.MediaType, payload []byte) (resp message.Message, rtt time.Duration, retrans int, err error) {
	d.mid++
	d.tokenSeq++
	mid := d.mid
	var token [8]byte
	binary.BigEndian.PutUint32(token[:4], d.tokenTag)
	binary.BigEndian.PutUint32(token[4:], d.tokenSeq)

	var cf [4]byte
	n, _ := message.EncodeUint32(cf[:], uint32(format))
	opts := make(message.Options, 0, 2+len(query))
	opts = opts.Add(message.Option{ID: message.URIPath, Value: []byte(path[1:])})
	opts = opts.Add(message.Option{ID: message.ContentFormat, Value: cf[:n]})
	for _, q := range query {
		opts = opts.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	req := message.Message{Token: token[:], Options: opts, Code: codes.POST, Payload: payload, MessageID: int32(mid), Type: message.Confirmable}
	size, err := coder.DefaultCoder.Encode(req, d.out)
	if err != nil {
		return resp, 0, 0, fmt.Errorf("encoding: %w", err)
	}
	out := d.out[:size]

	cfg := d.cfg
	timeout := time.Duration(float64(cfg.AckTimeout) * (1 + d.rng.Float64()*(cfg.AckRandomFactor-1)))
	first := time.Now()
	deadline := first.Add(timeout)
	if _, err := d.conn.Write(out); err != nil && ctx.Err() != nil {
		return resp, 0, 0, errStopped
	} // other write errors (ECONNREFUSED from an earlier datagram) count as a lost transmission
	var giveUp time.Time // --request-timeout: the exchange ends then, whatever the retransmissions
	if cfg.RequestTimeout > 0 {
		giveUp = first.Add(cfg.RequestTimeout)
	}
	separate := false
	for {
		wait := deadline
		if !giveUp.IsZero() && giveUp.Before(wait) {
			wait = giveUp
		}
		got, err := d.read(ctx, wait)
		if errors.Is(err, errStopped) || errors.Is(err, errClosed) {
			return resp, 0, retrans, err
		}
		if errors.Is(err, errTimeout) {
			if separate || retrans == cfg.MaxRetransmit || (!giveUp.IsZero() && !time.Now().Before(giveUp)) {
				return resp, 0, retrans, errTimeout
			}
			retrans++
			timeout *= 2
			deadline = time.Now().Add(timeout)
			if _, err := d.conn.Write(out); err != nil && ctx.Err() != nil {
				return resp, 0, retrans, errStopped
			}
			continue
		}
		m := message.Message{Options: d.opts[:0]}
		if _, err := coder.DefaultCoder.Decode(d.in[:got], &m); err != nil {
			continue // not CoAP: ignore
		}
		if m.Type == message.Confirmable {
			d.ack(m.MessageID) // a separate response, or a retransmission of one
		}
		switch {
		case m.Type == message.Acknowledgement && m.MessageID == int32(mid):
			if m.Code == codes.Empty {
				if !separate {
					separate = true
					d.st.separate.Add(1)
					// wait for the response as long as the retransmissions could have lasted
					deadline = first.Add(maxTransmitWait(cfg))
				}
				continue
			}
			if string(m.Token) != string(token[:]) {
				continue
			}
			return m, time.Since(first), retrans, nil
		case m.Type == message.Reset && m.MessageID == int32(mid):
			return resp, time.Since(first), retrans, errReset
		case (m.Type == message.Confirmable || m.Type == message.NonConfirmable) && m.Code >= codes.Created &&
			string(m.Token) == string(token[:]):
			return m, time.Since(first), retrans, nil
		}
		// anything else (a late answer to an earlier request) is ignored
	}
}

// read reads one datagram before deadline.
func (d *device) read(ctx context.Context, deadline time.Time) (int, error) {
	return readBefore(ctx, d.conn, d.in, deadline)
}

// readBefore reads one datagram (one DTLS record's CoAP message) from conn
// into buf before deadline. Silence and "connection refused" (an ICMP port
// unreachable: no server) are both errTimeout, the latter once deadline has
// passed. A DTLS session's Read returns io.EOF once the session is closed:
// by stopConn (errStopped, ctx is done then) or by the server (errClosed).
// pion's read deadline is its own, and a Read that passed it leaves the
// session usable.
func readBefore(ctx context.Context, conn packetConn, buf []byte, deadline time.Time) (int, error) {
	if err := conn.SetReadDeadline(deadline); err != nil {
		return 0, errStopped
	}
	n, err := conn.Read(buf)
	switch {
	case err == nil:
		return n, nil
	case ctx.Err() != nil || errors.Is(err, net.ErrClosed):
		return 0, errStopped
	case errors.Is(err, io.EOF):
		return 0, errClosed
	default: // a read timeout, ECONNREFUSED, or any other error: silence
		if !sleepUntil(ctx, deadline) {
			return 0, errStopped
		}
		return 0, errTimeout
	}
}

// ack acknowledges a confirmable message from the server.
func (d *device) ack(mid int32) { ackOn(d.conn, mid) }

func ackOn(conn packetConn, mid int32) {
	var buf [4]byte
	n, err := coder.DefaultCoder.Encode(message.Message{Code: codes.Empty, MessageID: mid, Type: message.Acknowledgement}, buf[:])
	if err == nil {
		conn.Write(buf[:n]) // best effort, like every UDP send
	}
}

// maxTransmitWait is MAX_TRANSMIT_WAIT of RFC 7252 4.8.2.
func maxTransmitWait(c *Config) time.Duration {
	return time.Duration(float64(c.AckTimeout) * float64(int(1)<<(c.MaxRetransmit+1)-1) * c.AckRandomFactor)
}

// sleepUntil waits until t and reports whether ctx is still live.
func sleepUntil(ctx context.Context, t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
