package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/medfleet/medfleet/coap"
)

// openCredentials reads Medfleet's CA and the credentials file when the
// agent starts, and checks that it has a credential or a way to enrol for
// one.
func (a *Agent) openCredentials() error {
	if a.cfg.Insecure {
		return nil
	}
	caPEM := a.cfg.CA
	if a.cfg.CAFile != "" {
		b, err := os.ReadFile(a.cfg.CAFile)
		if err != nil {
			return fmt.Errorf("agent: ca_file: %w", err)
		}
		caPEM = append(append([]byte(nil), caPEM...), b...)
	}
	if len(caPEM) > 0 {
		cas, err := parseCertificates(caPEM)
		if err != nil {
			return fmt.Errorf("agent: ca_file: %w", err)
		}
		a.cas = cas
	}
	if err := a.loadCredentials(); err != nil {
		return err
	}
	if a.creds == nil && a.cfg.EnrolToken == "" && a.enrolToken == nil {
		where := "credentials_file is not set (nor state_dir)"
		if a.cfg.CredentialsFile != "" {
			where = fmt.Sprintf("credentials_file %s does not exist", a.cfg.CredentialsFile)
		}
		return fmt.Errorf("%w: %s and enrol_token is empty: give the device an enrolment token "+
			"(enrol_token, from medfleetctl) or its credentials file, or set insecure for plain CoAP", ErrNoCredential, where)
	}
	if a.creds != nil && a.creds.kind == coap.KindCertificate && len(a.cas)+len(a.creds.cas) == 0 {
		return fmt.Errorf("agent: ca_file: required to verify medfleetd with a certificate credential (the credentials file has no ca)")
	}
	return nil
}

// loadCredentials reads the credentials file, if any, and takes the
// credential it holds when it changed since it was last read. A missing file
// leaves the credential as it was.
func (a *Agent) loadCredentials() error {
	path := a.cfg.CredentialsFile
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: credentials_file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("agent: credentials_file: %w", err)
	}
	if a.credsSeen != nil && bytes.Equal(b, a.credsSeen) {
		return nil
	}
	a.credsSeen = b
	if info, err := f.Stat(); err == nil && info.Mode().Perm()&0o077 != 0 {
		a.log.Warn("credentials file is readable or writable by others than its owner; it should be mode 0600",
			slog.String(keyPath, path), slog.String(keyMode, info.Mode().Perm().String()))
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("agent: credentials_file: %s: %w", path, err)
	}
	cred, err := c.check(a.cfg.DeviceID)
	if err != nil {
		return fmt.Errorf("agent: credentials_file: %s: %w", path, err)
	}
	if a.creds != nil {
		a.log.Info("credentials file changed; new sessions use its credential", slog.String(keyKind, cred.kind))
	}
	a.creds = cred
	return nil
}

// reloadCredentials reads the credentials file again, before a new session.
// A file that became unusable is logged (once per version of it) and the
// credential in use is kept.
func (a *Agent) reloadCredentials() {
	if err := a.loadCredentials(); err != nil {
		a.log.Error("credentials file unusable; keeping the credential in use", slog.Any(keyErr, err))
	}
}

// dtlsOptions are the options of every DTLS session. pion offers, of
// coap.CipherSuites, only the suites the credential can use: the PSK ones
// with a PSK, ECDHE-ECDSA with a certificate or with none (enrolment).
func dtlsOptions() []piondtls.ClientOption {
	return []piondtls.ClientOption{
		piondtls.WithCipherSuites(coap.CipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
		// The server may give a Connection ID (RFC 9146), which keeps the
		// session when the device's address changes; the agent needs none.
		piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()),
	}
}

// caPool is Medfleet's CA as configured and as the credential carries it;
// nil when there is none.
func (a *Agent) caPool() *x509.CertPool {
	cas := a.cas
	if a.creds != nil {
		cas = append(cas[:len(cas):len(cas)], a.creds.cas...)
	}
	if len(cas) == 0 {
		return nil
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return pool
}

// sessionOptions are the DTLS options of an operational session, with the
// credential of the credentials file as it is now.
func (a *Agent) sessionOptions() ([]piondtls.ClientOption, error) {
	a.reloadCredentials()
	if a.creds == nil {
		return nil, ErrNoCredential
	}
	opts := dtlsOptions()
	switch a.creds.kind {
	case coap.KindPSK:
		psk := a.creds.psk
		opts = append(opts,
			piondtls.WithPSK(func([]byte) ([]byte, error) { return psk, nil }),
			// A pion client sends its "identity hint" as the PSK identity.
			piondtls.WithPSKIdentityHint([]byte(a.cfg.DeviceID)),
		)
	case coap.KindCertificate:
		pool := a.caPool()
		if pool == nil {
			return nil, errors.New("agent: ca_file: no CA to verify medfleetd with")
		}
		opts = append(opts,
			piondtls.WithCertificates(a.creds.cert),
			piondtls.WithRootCAs(pool),
			piondtls.WithServerName(coap.ServerName),
		)
	}
	return opts, nil
}

// enrolOptions are the DTLS options of an enrolment session: the server
// proves itself with a certificate from Medfleet's CA, the device with
// nothing but its token.
func (a *Agent) enrolOptions() ([]piondtls.ClientOption, error) {
	pool := a.caPool()
	if pool == nil {
		return nil, errors.New("agent: ca_file: required to enrol")
	}
	return append(dtlsOptions(), piondtls.WithRootCAs(pool), piondtls.WithServerName(coap.ServerName)), nil
}

// enrol trades the enrolment token for a credential: POST /bs?ep={device}
// over a DTLS session of its own that authenticates only the server, which
// it closes after. It saves the credential; the next request opens the
// operational session with it. A 4.xx (4.03: the token is invalid, expired,
// used or for another device; 4.00) is ErrEnrolRefused: the token is not
// tried again. A 5.xx, a 4.29 or no answer is for a retry after a backoff.
func (a *Agent) enrol(ctx context.Context) error {
	token := a.cfg.EnrolToken
	if token == "" {
		if a.token == "" {
			if a.enrolToken == nil {
				return ErrNoCredential
			}
			t, err := a.enrolToken(ctx, a.cfg.DeviceID)
			if err != nil {
				return fmt.Errorf("agent: enrolment token: %w", err)
			}
			a.token = t
		}
		token = a.token
	}
	req := coap.EnrolRequest{Token: token, Kind: a.cfg.EnrolKind}
	if req.Kind == coap.KindCertificate {
		if a.enrolKey == nil {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return fmt.Errorf("agent: enrolment key: %w", err)
			}
			a.enrolKey = key
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: a.cfg.DeviceID},
		}, a.enrolKey)
		if err != nil {
			return fmt.Errorf("agent: enrolment CSR: %w", err)
		}
		req.CSR = csr
	}
	body, err := req.Encode()
	if err != nil {
		return fmt.Errorf("agent: enrolment request: %w", err)
	}
	l := &link{server: a.cfg.Server, log: a.log, tick: a.link.tick, dtls: a.enrolOptions, handshakeTimeout: a.cfg.HandshakeTimeout}
	defer l.close()
	resp, err := l.do(ctx, a.cfg.RequestTimeout, request{
		method: codes.POST, path: coap.PathBootstrap, format: coap.FormatCBOR, body: body, accept: true,
		queries: []string{coap.QueryEndpoint + "=" + a.cfg.DeviceID},
	})
	if err != nil {
		return err
	}
	switch {
	case resp.code == codes.Changed:
	case resp.code == codes.TooManyRequests || resp.code>>5 == 5:
		return statusError("enrol", resp)
	default:
		return fmt.Errorf("%w: server answered %v: %s", ErrEnrolRefused, resp.code, resp.diagnostic())
	}
	c, err := a.enrolled(resp.body)
	if err != nil {
		// The server took the token: trying it again would be refused.
		return fmt.Errorf("%w: %w", ErrEnrolRefused, err)
	}
	cred, err := c.check(a.cfg.DeviceID)
	if err != nil {
		return fmt.Errorf("%w: enrolment response: %w", ErrEnrolRefused, err)
	}
	a.creds, a.token, a.enrolKey = cred, "", nil
	where := "memory"
	if path := a.cfg.CredentialsFile; path != "" {
		var b []byte
		err := os.MkdirAll(filepath.Dir(path), 0o700)
		if err == nil {
			b, err = c.write(path, !a.cfg.NoSync)
		}
		if err != nil {
			a.log.Error("cannot save the enrolled credential; keeping it in memory: the device must enrol again after a restart",
				slog.String(keyPath, path), slog.Any(keyErr, err))
		} else {
			a.credsSeen, where = b, path
		}
	}
	a.log.Info("enrolled", slog.String(keyKind, cred.kind), slog.String(keyPath, where))
	return nil
}

// enrolled makes the credentials of an enrolment response.
func (a *Agent) enrolled(body []byte) (Credentials, error) {
	r, err := coap.DecodeEnrolResponse(body)
	if err != nil {
		return Credentials{}, err
	}
	if r.Kind != a.cfg.EnrolKind {
		return Credentials{}, fmt.Errorf("enrolment response: kind %q, asked for %q", r.Kind, a.cfg.EnrolKind)
	}
	c := Credentials{Device: a.cfg.DeviceID, Kind: r.Kind}
	switch r.Kind {
	case coap.KindPSK:
		c.PSK = r.PSK
	case coap.KindCertificate:
		key, err := x509.MarshalPKCS8PrivateKey(a.enrolKey)
		if err != nil {
			return Credentials{}, err
		}
		c.Certificate = certificatePEM(r.Certificate)
		c.PrivateKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}))
	}
	if len(r.CA) > 0 {
		if _, err := x509.ParseCertificate(r.CA); err != nil {
			return Credentials{}, fmt.Errorf("enrolment response: ca: %w", err)
		}
		c.CA = certificatePEM(r.CA)
	}
	return c, nil
}
