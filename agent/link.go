package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/medfleet/medfleet/coap"
)

// retransmitTick is how often go-coap's client checks for confirmable
// messages to retransmit.
const retransmitTick = time.Second

// link is an agent's CoAP client: its own UDP socket to the server, dialled
// when first needed and again after the connection died (an ICMP port
// unreachable closes a connected UDP socket for good). Over DTLS, every new
// connection is a new session whose handshake completes, within
// handshakeTimeout, before the link is used. It is used by one goroutine at a
// time.
type link struct {
	server string
	log    *slog.Logger
	tick   *ticker // runs go-coap's periodic work (retransmissions)
	// dtls returns the DTLS options of a new session; nil means plain
	// CoAP. It is called for every session, so that a credential that
	// changed since the last one is used.
	dtls             func() ([]piondtls.ClientOption, error)
	handshakeTimeout time.Duration

	cc   *client.Conn
	stop chan struct{} // unregisters cc from tick
}

// request is one CoAP request of the protocol.
type request struct {
	method  codes.Code // codes.POST, codes.GET or codes.DELETE
	path    string
	queries []string
	format  message.MediaType // of body
	body    []byte
	accept  bool // ask for a CBOR answer
	// block2, when set, is the Block2 option of a GET: the block the agent
	// asks for (firmware downloads drive Block2 themselves, one request per
	// block).
	block2 *uint32
	// trace, when set, is sent in option 65020 (coap.OptionTraceparent).
	trace string
	// non sends the request Non-confirmable: go-coap does not retransmit
	// it, and the caller's timeout is the wait for the answer.
	non bool
}

// response is what the agent keeps of a CoAP response.
type response struct {
	code      codes.Code
	format    message.MediaType
	hasFormat bool
	body      []byte
	maxAge    time.Duration // Max-Age option, 0 when absent
	// Block2, ETag and Size2 options, for firmware downloads.
	block2    uint32
	hasBlock2 bool
	etag      []byte
	size2     uint32
	hasSize2  bool
}

// conn returns the live connection, dialling a new one when needed.
func (l *link) conn(ctx context.Context) (*client.Conn, error) {
	if l.cc != nil {
		select {
		case <-l.cc.Done():
			l.close()
		default:
			return l.cc, nil
		}
	}
	stop := make(chan struct{})
	opts := []udp.Option{
		options.WithErrors(func(err error) { l.log.Debug("coap transport", slog.Any(keyErr, err)) }),
		// go-coap's default runner ticks every 4 s (too coarse for an
		// ACK_TIMEOUT of 2 s) in a goroutine that outlives the connection.
		options.WithPeriodicRunner(l.tick.runner(stop)),
		// No blockwise transfers: the server refuses Block1 (protocol
		// section 10), and firmware downloads request each Block2 block
		// themselves, so that a download resumes from any block and is not
		// cut short by go-coap's whole-transfer timeout.
		options.WithBlockwise(false, blockwise.SZX1024, time.Minute),
	}
	var cc *client.Conn
	var err error
	if l.dtls == nil {
		cc, err = udp.Dial(l.server, opts...)
		if err != nil {
			err = fmt.Errorf("agent: dial %s: %w", l.server, err)
		}
	} else {
		cc, err = l.dialDTLS(ctx, opts)
	}
	if err != nil {
		close(stop)
		return nil, err
	}
	l.cc, l.stop = cc, stop
	return cc, nil
}

// dialDTLS opens a DTLS session and completes its handshake. It does what
// go-coap's dtls.Dial does, with the handshake first: dtls.Dial leaves it to
// the first read or write, without a deadline and with no error of its own.
func (l *link) dialDTLS(ctx context.Context, opts []udp.Option) (*client.Conn, error) {
	dtlsOpts, err := l.dtls()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", l.server)
	if err != nil {
		return nil, fmt.Errorf("agent: dial %s: %w", l.server, err)
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(c), c.RemoteAddr(), dtlsOpts...)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("agent: dtls: %w", err)
	}
	hctx, cancel := context.WithTimeout(ctx, l.handshakeTimeout)
	err = dc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		_ = dc.Close() // closes c
		return nil, fmt.Errorf("%w: %s: %w", ErrHandshake, l.server, err)
	}
	return dtls.Client(dc, append(opts, options.WithCloseSocket())...), nil
}

// do runs one exchange with a deadline of timeout. Any response code is a
// response; the error is for no response at all.
func (l *link) do(ctx context.Context, timeout time.Duration, r request) (response, error) {
	cc, err := l.conn(ctx)
	if err != nil {
		return response{}, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.ReadSeeker // nil, not a nil *bytes.Reader: no payload, no Content-Format
	if len(r.body) > 0 {
		body = bytes.NewReader(r.body)
	}
	req := cc.AcquireMessage(ctx)
	defer cc.ReleaseMessage(req)
	token, err := cc.GetToken()
	if err != nil {
		return response{}, fmt.Errorf("agent: token: %w", err)
	}
	switch r.method {
	case codes.POST:
		err = req.SetupPost(r.path, token, r.format, body)
	case codes.GET:
		err = req.SetupGet(r.path, token)
	case codes.DELETE:
		err = req.SetupDelete(r.path, token)
	default:
		err = fmt.Errorf("method %v", r.method)
	}
	if err != nil {
		return response{}, fmt.Errorf("agent: %v %s: %w", r.method, r.path, err)
	}
	for _, q := range r.queries {
		req.AddQuery(q)
	}
	if r.accept {
		req.SetAccept(coap.FormatCBOR)
	}
	if r.block2 != nil {
		req.SetOptionUint32(message.Block2, *r.block2)
	}
	if r.trace != "" {
		req.SetOptionString(coap.OptionTraceparent, r.trace)
	}
	if r.non {
		req.SetType(message.NonConfirmable)
	}
	resp, err := cc.Do(req)
	if err != nil {
		select {
		case <-cc.Done():
			l.close() // dead: dial again next time
		default:
			if l.dtls != nil && parent.Err() == nil && !r.non {
				// No answer over DTLS: the server may have lost the
				// session (it restarted) and would drop every record of
				// it. The next try shakes hands again. A NON request is
				// not retransmitted, so a lost datagram is the likelier
				// cause: the reports, which are, find out about the
				// session.
				l.close()
			}
		}
		return response{}, fmt.Errorf("agent: %v %s: %w", r.method, r.path, err)
	}
	defer cc.ReleaseMessage(resp)
	out := response{code: resp.Code()}
	if f, err := resp.ContentFormat(); err == nil {
		out.format, out.hasFormat = f, true
	}
	if resp.Body() != nil {
		if out.body, err = resp.ReadBody(); err != nil {
			return response{}, fmt.Errorf("agent: %v %s: response body: %w", r.method, r.path, err)
		}
	}
	opts := resp.Options()
	if v, err := opts.GetUint32(message.MaxAge); err == nil {
		out.maxAge = time.Duration(v) * time.Second
	}
	if v, err := opts.GetUint32(message.Block2); err == nil {
		out.block2, out.hasBlock2 = v, true
	}
	if v, err := opts.GetBytes(message.ETag); err == nil {
		out.etag = bytes.Clone(v)
	}
	if v, err := opts.GetUint32(message.Size2); err == nil {
		out.size2, out.hasSize2 = v, true
	}
	return out, nil
}

// desired decodes the desired state a response carries, nil when it has
// none.
func (r response) desired() (*coap.Desired, error) {
	if len(r.body) == 0 {
		return nil, nil
	}
	format := coap.FormatCBOR
	if r.hasFormat {
		format = r.format
	}
	return coap.DecodeDesired(format, r.body)
}

// diagnostic is the response's diagnostic payload, for a log line.
func (r response) diagnostic() string {
	const limit = 256
	if !r.hasFormat || r.format == message.TextPlain {
		if len(r.body) > limit {
			return string(r.body[:limit]) + "..."
		}
		return string(r.body)
	}
	return fmt.Sprintf("%d bytes of content format %d", len(r.body), r.format)
}

// close closes the connection, if any, and waits (briefly) for go-coap's
// reader to notice.
func (l *link) close() {
	if l.cc == nil {
		return
	}
	_ = l.cc.Close()
	close(l.stop)
	select {
	case <-l.cc.Done():
	case <-time.After(time.Second):
		l.log.Debug("coap connection slow to close")
	}
	l.cc, l.stop = nil, nil
}

// Errors of an exchange whose response says the agent must do something
// other than retry soon.
var (
	// ErrUnknown is a 4.04 to a report or heartbeat: the server does not
	// know the registration, and the agent registers again.
	ErrUnknown = errors.New("agent: server does not know the registration")
	// ErrRefused is a 4.03 (the server refuses the device, for example a
	// decommissioned one) or a 4.00 to a registration: the agent waits
	// Config.RefusedBackoff and keeps its queue.
	ErrRefused = errors.New("agent: server refused the device")
	// ErrHandshake is a DTLS handshake that failed or timed out: the agent
	// backs off as for a network error, and reads its credentials file
	// again before the next session.
	ErrHandshake = errors.New("agent: DTLS handshake failed")
	// ErrEnrolRefused is an enrolment the server refused (4.03: the token is
	// invalid, expired, used, or for another device; 4.00): the agent does
	// not try the token again.
	ErrEnrolRefused = errors.New("agent: enrolment refused")
)

// StatusError is an unexpected response code.
type StatusError struct {
	Op         string // "register", "report", "heartbeat", "deregister", "enrol", "firmware"
	Code       codes.Code
	Diagnostic string
	MaxAge     time.Duration // of a 4.29 Too Many Requests or a 5.03
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("agent: %s: server answered %v", e.Op, e.Code)
	if e.Diagnostic != "" {
		s += ": " + e.Diagnostic
	}
	return s
}

// Unwrap maps the codes that have a meaning to ErrUnknown and ErrRefused.
func (e *StatusError) Unwrap() error {
	switch e.Code {
	case codes.NotFound:
		return ErrUnknown
	case codes.Forbidden:
		return ErrRefused
	}
	return nil
}

func statusError(op string, r response) error {
	return &StatusError{Op: op, Code: r.code, Diagnostic: r.diagnostic(), MaxAge: r.maxAge}
}

// poison reports whether a response to a report means the server will never
// take that report: retrying it would block the queue forever.
func poison(c codes.Code) bool {
	switch c {
	case codes.BadRequest, codes.BadOption, codes.RequestEntityTooLarge, codes.UnsupportedMediaType:
		return true
	}
	return false
}
