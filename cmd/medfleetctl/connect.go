package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// The environment variables of the connection flags. MEDFLEET_TOKEN has no
// flag: a secret on the command line can be read by every user of the host.
const (
	envCAFile     = "MEDFLEET_CA_FILE"
	envToken      = "MEDFLEET_TOKEN"
	envTokenFile  = "MEDFLEET_TOKEN_FILE"
	envCertFile   = "MEDFLEET_CERT_FILE"
	envKeyFile    = "MEDFLEET_KEY_FILE"
	envServerName = "MEDFLEET_SERVER_NAME"
	envInsecure   = "MEDFLEET_INSECURE"
)

// Where medfleetd, started in the current directory with its default
// data_dir, keeps its CA and the first administrator's token. They are used
// when they exist, so that medfleetctl works out of the box next to a
// freshly started medfleetd.
var (
	defaultCAFile    = filepath.Join("medfleet-data", "tls", "ca.crt")
	defaultTokenFile = filepath.Join("medfleet-data", "admin.token")
)

// connFlags are the connection flags (transport security and credential)
// as given on the command line.
type connFlags struct {
	caFile, tokenFile, certFile, keyFile, serverName string
	insecure                                         bool
}

func (f *connFlags) add(pf *pflag.FlagSet) {
	pf.StringVar(&f.caFile, "ca-file", "", "PEM of the CA that signs the server's certificate (env "+envCAFile+"; default ./"+defaultCAFile+" if it exists, else the system's roots)")
	pf.StringVar(&f.tokenFile, "token-file", "", "file holding the API token (env "+envTokenFile+"; "+envToken+" holds the token itself; default ./"+defaultTokenFile+" if it exists)")
	pf.StringVar(&f.certFile, "cert", "", "client certificate, PEM, to authenticate with instead of a token (env "+envCertFile+")")
	pf.StringVar(&f.keyFile, "key", "", "private key of --cert, PEM (env "+envKeyFile+")")
	pf.StringVar(&f.serverName, "server-name", "", "name to check the server's certificate against (env "+envServerName+"; default the host of --server)")
	pf.BoolVar(&f.insecure, "insecure", false, "plaintext and no credential, for a server run with --insecure-grpc (env "+envInsecure+"=1)")
}

// source is a file named by a connection flag, and where the name came
// from, for error messages and hints.
type source struct {
	flag string // "--ca-file"
	path string
	from string // "" for the flag, an environment variable, or "default"
}

func (s source) String() string {
	switch s.from {
	case "":
		return fmt.Sprintf("%s %q", s.flag, s.path)
	case "default":
		return fmt.Sprintf("%s %q (the default)", s.flag, s.path)
	default:
		return fmt.Sprintf("%s %q (from %s)", s.flag, s.path, s.from)
	}
}

// Ways of authenticating, as hints name them.
const (
	authNone        = "none"
	authToken       = "token"
	authCertificate = "certificate"
	authInsecure    = "insecure"
)

// connection is what the connection flags, the environment and the default
// files resolved to. Files are read only when dialling.
type connection struct {
	insecure   bool
	serverName string
	ca         source // path "": the system's roots
	cert, key  source // path "": no client certificate
	tokenFile  source // path "": token, if any
	token      string // from MEDFLEET_TOKEN
	auth       string // authNone, authToken, ...
}

// resolve applies the environment and the defaults to the flags given.
// changed tells whether a flag was on the command line, which then wins over
// the environment; exists tells whether a default file exists.
//
// Tokens: the first of --token-file, MEDFLEET_TOKEN and MEDFLEET_TOKEN_FILE
// that is set; else, without a client certificate, the default token file.
// With a client certificate no token is sent (the server would prefer the
// certificate anyway), and --token-file is an error.
func (f connFlags) resolve(changed func(string) bool, getenv func(string) string, exists func(string) bool) (connection, error) {
	var c connection
	// pick returns the flag's value if given, else the environment's; the
	// zero source if neither.
	pick := func(flag, value, env string) source {
		switch {
		case changed(strings.TrimPrefix(flag, "--")):
			return source{flag: flag, path: value}
		case getenv(env) != "":
			return source{flag: flag, path: getenv(env), from: env}
		}
		return source{}
	}

	c.insecure = f.insecure
	if !changed("insecure") {
		if v := getenv(envInsecure); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("%s=%q: want 1 or 0 (true or false)", envInsecure, v)
			}
			c.insecure = b
		}
	}
	if c.insecure {
		// Credentials from the environment are ignored; on the command
		// line they contradict --insecure.
		for _, name := range []string{"ca-file", "token-file", "cert", "key", "server-name"} {
			if changed(name) {
				return c, fmt.Errorf("--%s: a plaintext connection (--insecure or %s) checks no certificate and sends no credential", name, envInsecure)
			}
		}
		c.auth = authInsecure
		return c, nil
	}

	c.serverName = pick("--server-name", f.serverName, envServerName).path
	c.ca = pick("--ca-file", f.caFile, envCAFile)
	if c.ca.path == "" && exists(defaultCAFile) {
		c.ca = source{flag: "--ca-file", path: defaultCAFile, from: "default"}
	}

	c.cert = pick("--cert", f.certFile, envCertFile)
	c.key = pick("--key", f.keyFile, envKeyFile)
	switch {
	case c.cert.path != "" && c.key.path == "":
		return c, fmt.Errorf("%s: needs --key (or %s) too", c.cert, envKeyFile)
	case c.cert.path == "" && c.key.path != "":
		return c, fmt.Errorf("%s: needs --cert (or %s) too", c.key, envCertFile)
	case c.cert.path != "":
		if changed("token-file") {
			return c, errors.New("--token-file and --cert: give one credential, a token or a client certificate")
		}
		c.auth = authCertificate
		return c, nil
	}

	switch {
	case changed("token-file"):
		c.tokenFile = source{flag: "--token-file", path: f.tokenFile}
		if f.tokenFile == "" {
			return c, errors.New(`--token-file "": want a file`)
		}
	case getenv(envToken) != "":
		c.token = getenv(envToken)
	case getenv(envTokenFile) != "":
		c.tokenFile = source{flag: "--token-file", path: getenv(envTokenFile), from: envTokenFile}
	case exists(defaultTokenFile):
		c.tokenFile = source{flag: "--token-file", path: defaultTokenFile, from: "default"}
	default:
		c.auth = authNone
		return c, nil
	}
	c.auth = authToken
	return c, nil
}

// fileExists reports whether path names a regular file (or a link to one).
func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// tokenFrom says where the token comes from, for messages; it never
// includes the token.
func (c connection) tokenFrom() string {
	if c.tokenFile.path != "" {
		return c.tokenFile.String()
	}
	return envToken
}

// dialOptions reads the files the connection names and returns the
// transport security and per-RPC credential. Errors name the flag or
// variable, never a secret.
func (c connection) dialOptions() ([]grpc.DialOption, error) {
	if c.insecure {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.serverName}
	if c.ca.path != "" {
		pem, err := os.ReadFile(c.ca.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.ca, unwrapPath(err))
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: holds no PEM certificate", c.ca)
		}
	}
	if c.cert.path != "" {
		certPEM, err := os.ReadFile(c.cert.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.cert, unwrapPath(err))
		}
		keyPEM, err := os.ReadFile(c.key.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.key, unwrapPath(err))
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%s and %s: %w", c.cert, c.key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}

	if c.auth == authToken {
		tok := c.token
		if c.tokenFile.path != "" {
			b, err := os.ReadFile(c.tokenFile.path)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.tokenFile, unwrapPath(err))
			}
			tok = string(b)
		}
		tok = strings.TrimSpace(tok)
		if err := checkToken(tok); err != nil {
			return nil, fmt.Errorf("%s: %w", c.tokenFrom(), err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(tok)))
	}
	return opts, nil
}

// checkToken checks that a token can go into a header: one word of
// printable ASCII. The error does not quote it.
func checkToken(tok string) error {
	if tok == "" {
		return errors.New("holds no token")
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return errors.New("want one line holding the token (mft_...), without spaces or control characters")
		}
	}
	return nil
}

// unwrapPath drops the "open <path>: " of an *os.PathError, since the
// message names the file already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// bearer sends an API token with every call, over TLS only.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// hints explains an error that the credential or the transport security
// likely caused, in lines indented under the error.
func (c connection) hints(err error) []string {
	st, ok := status.FromError(err)
	if !ok || c.auth == "" {
		return nil
	}
	msg := st.Message()
	var hint string
	switch st.Code() {
	case codes.Unauthenticated:
		switch c.auth {
		case authToken:
			hint = "the server refused the token from " + c.tokenFrom() + ": set " + envToken + " or --token-file to a valid token"
		case authCertificate:
			hint = "the server refused the client certificate " + c.cert.String() + ": set --cert and --key to a certificate of an existing user, or use a token"
		case authNone:
			hint = "no credential was sent: set " + envToken + " or --token-file (medfleetd writes the first administrator's token to {data_dir}/admin.token), or --cert and --key"
		}
	case codes.PermissionDenied:
		if c.auth != authInsecure {
			hint = "the server knows the caller but its role or site does not allow this; 'medfleetctl whoami' shows who the server thinks you are"
		}
	case codes.Unavailable:
		switch {
		case strings.Contains(msg, "certificate is valid for") || strings.Contains(msg, "certificate is not valid for"):
			hint = "the server's certificate does not name the host of --server: give one of its names with --server-name (medfleetd's certificate names medfleetd, localhost, 127.0.0.1, ::1 and its host name)"
		case strings.Contains(msg, "x509:") && c.ca.path == "":
			hint = "the server's certificate is not signed by a CA of the system: set --ca-file or " + envCAFile + " to medfleetd's CA, {data_dir}/tls/ca.crt"
		case strings.Contains(msg, "x509:"):
			hint = "the server's certificate is not signed by the CA in " + c.ca.String() + ": use medfleetd's CA, {data_dir}/tls/ca.crt"
		case strings.Contains(msg, "first record does not look like a TLS handshake"):
			hint = "the server speaks plaintext (--insecure-grpc): add --insecure or set " + envInsecure + "=1"
		case c.auth == authCertificate && (strings.Contains(msg, "bad certificate") || strings.Contains(msg, "unknown certificate authority")):
			hint = "the server refused the client certificate " + c.cert.String() + " in the TLS handshake: it is not signed by the server's client CA"
		case c.insecure && (strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "server preface")):
			hint = "--insecure speaks plaintext: if the server uses TLS (medfleetd's default), drop --insecure (and unset " + envInsecure + ")"
		}
	}
	if hint == "" {
		return nil
	}
	return []string{"  " + hint}
}
