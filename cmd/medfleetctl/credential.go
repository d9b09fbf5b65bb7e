package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/medfleet/medfleet/internal/pki"
	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Credential kinds as the agent's credentials file and --kind spell them.
const (
	kindPSK  = "psk"
	kindCert = "cert"
)

// credentialKinds maps --kind to the API's kinds.
var credentialKinds = map[string]medfleetv1.CredentialKind{
	kindPSK:  medfleetv1.CredentialKind_CREDENTIAL_KIND_PSK,
	kindCert: medfleetv1.CredentialKind_CREDENTIAL_KIND_CERTIFICATE,
}

// agentCredentials is the credentials file of medfleet-agent, field for
// field as package agent reads it (agent.Credentials): JSON, mode 0600.
// medfleetctl does not import agent, which would pull the CoAP and DTLS
// stacks into it; a test checks that the agent reads what this writes.
type agentCredentials struct {
	Device string `json:"device"`
	Kind   string `json:"kind"`
	// PSK is base64 (standard encoding) in JSON, as encoding/json
	// marshals []byte.
	PSK         []byte `json:"psk,omitempty"`
	Certificate string `json:"certificate,omitempty"`
	PrivateKey  string `json:"private_key,omitempty"`
	CA          string `json:"ca,omitempty"`
}

// encode returns the file's contents, indented as the agent writes it.
func (a agentCredentials) encode() ([]byte, error) {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// withCredentialClient dials the server, runs fn and closes the connection.
func (c *cli) withCredentialClient(ctx context.Context, fn func(medfleetv1.CredentialServiceClient) error) error {
	return c.withConn(ctx, func(conn *grpc.ClientConn) error {
		return fn(medfleetv1.NewCredentialServiceClient(conn))
	})
}

const enrollLong = `Give a device its DTLS credential, in one of two ways.

Without --out: create a one-time enrolment token and print it on stdout,
alone (a warning that it is shown only now goes to stderr). The agent trades
it for its credential on first start, checking medfleetd against the CA that
--ca-out writes:
  medfleet-agent run --id ID --enrol-token TOKEN --ca-file FILE ...
The token works once, for this device only, until --ttl has passed (at most
7 days). With -o json the output is the CreateEnrollmentResponse, token and
CA included.

With --kind and --out: issue the credential now and write the agent's
credentials file (mode 0600) for the agent's --credentials. --kind psk makes
a pre-shared key; --kind cert makes an ECDSA P-256 key here, which never
leaves this machine, and has the server sign a certificate for it. The file
also holds the CA. An existing file is not replaced unless --force. With -o
json the output is the DeviceCredential (no secrets).

Enrolling again rotates the credential: the device's previous one stops
working as soon as the new one is issued (or the new token is used). To cut a
device off without a new credential, use "device credential revoke".`

func (c *cli) deviceEnrollCommand() *cobra.Command {
	var (
		ttl        daysFlag
		caOut, out string
		kind       string
		force      bool
	)
	cmd := &cobra.Command{
		Use:   "enroll ID [--ttl D] [--ca-out FILE] | --kind psk|cert --out FILE",
		Short: "Give a device a credential: an enrolment token, or a credentials file",
		Long:  enrollLong,
		Example: `  medfleetctl device enroll pump-0001 --ca-out medfleet-ca.pem > pump-0001.token
  medfleetctl device enroll pump-0001 --kind psk --out pump-0001.json
  medfleetctl device enroll pump-0001 --kind cert --out pump-0001.json --force`,
		Args: exactArgs(1, "one device id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeviceID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			fl := cmd.Flags()
			switch {
			case fl.Changed("kind") && !fl.Changed("out"):
				return usageErrorf(cmd, "--kind: needs --out FILE, where the credentials go")
			case fl.Changed("out") && !fl.Changed("kind"):
				return usageErrorf(cmd, "--out: needs --kind psk or --kind cert")
			case fl.Changed("out") && fl.Changed("ttl"):
				return usageErrorf(cmd, "--ttl: only for an enrolment token, not with --out")
			case fl.Changed("out") && fl.Changed("ca-out"):
				return usageErrorf(cmd, "--ca-out: only for an enrolment token; the credentials file holds the CA")
			case fl.Changed("force") && !fl.Changed("out") && !fl.Changed("ca-out"):
				return usageErrorf(cmd, "--force: replaces the file of --out or --ca-out, and neither is given")
			}
			if fl.Changed("out") {
				k, ok := credentialKinds[kind]
				if !ok {
					return usageErrorf(cmd, "--kind: want psk or cert, got %q", kind)
				}
				return c.issueCredential(cmd, id, k, out, force)
			}
			if ttl == 0 {
				return usageErrorf(cmd, "--ttl: must be positive")
			}
			return c.createEnrollment(cmd, id, time.Duration(ttl), caOut, force)
		},
	}
	fl := cmd.Flags()
	ttl = daysFlag(time.Hour)
	fl.Var(&ttl, "ttl", "how long the enrolment token is valid, at most 7d")
	fl.StringVar(&caOut, "ca-out", "", "write the CA the agent checks medfleetd against to this file (PEM)")
	fl.StringVar(&kind, "kind", "", "issue a credential now: psk or cert (with --out)")
	fl.StringVar(&out, "out", "", "write the agent's credentials file here, mode 0600 (with --kind)")
	fl.BoolVar(&force, "force", false, "replace the file of --out or --ca-out if it exists")
	return cmd
}

// createEnrollment makes an enrolment token and prints it.
func (c *cli) createEnrollment(cmd *cobra.Command, id string, ttl time.Duration, caOut string, force bool) error {
	return c.withCredentialClient(cmd.Context(), func(client medfleetv1.CredentialServiceClient) error {
		var caFile *outFile
		if caOut != "" {
			var err error
			if caFile, err = createOutFile("--ca-out", caOut, 0o644, force); err != nil {
				return err
			}
			defer caFile.abort()
		}
		rctx, cancel := c.rpcContext(cmd.Context())
		defer cancel()
		resp, err := client.CreateEnrollment(rctx, &medfleetv1.CreateEnrollmentRequest{
			Device: devicesPrefix + id,
			Ttl:    durationpb.New(ttl),
		})
		if err != nil {
			return err
		}
		if caFile != nil {
			if err := caFile.commit([]byte(resp.GetCaCertificate())); err != nil {
				return err
			}
		}
		if c.flags.output == "json" {
			err = writeJSON(c.stdout, resp)
		} else {
			_, err = fmt.Fprintln(c.stdout, resp.GetToken())
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.stderr, enrollmentWarning(resp.GetEnrollment(), caOut))
		return err
	})
}

// enrollmentWarning is the line on stderr after an enrolment token.
func enrollmentWarning(e *medfleetv1.Enrollment, caOut string) string {
	s := "medfleetctl: the enrolment token of " + cell(e.GetDevice()) + " is shown only now; it works once"
	if t := e.GetExpireTime(); t != nil {
		s += ", until " + t.AsTime().UTC().Format(time.RFC3339)
	}
	if caOut == "" {
		s += "; the agent also needs the CA (--ca-out FILE)"
	}
	return s
}

// issueCredential issues a credential of kind and writes the agent's
// credentials file. The file is created before the call: the call revokes
// the device's previous credential, and the new one must not be lost.
func (c *cli) issueCredential(cmd *cobra.Command, id string, kind medfleetv1.CredentialKind, out string, force bool) error {
	return c.withCredentialClient(cmd.Context(), func(client medfleetv1.CredentialServiceClient) error {
		f, err := createOutFile("--out", out, 0o600, force)
		if err != nil {
			return err
		}
		defer f.abort()

		req := &medfleetv1.IssueDeviceCredentialRequest{Device: devicesPrefix + id, Kind: kind}
		creds := agentCredentials{Device: id, Kind: kindPSK}
		if kind == medfleetv1.CredentialKind_CREDENTIAL_KIND_CERTIFICATE {
			key, err := pki.NewKey()
			if err != nil {
				return err
			}
			if req.Csr, err = pki.NewCSR(key, id); err != nil {
				return err
			}
			keyPEM, err := pki.KeyPEM(key)
			if err != nil {
				return err
			}
			creds.Kind, creds.PrivateKey = kindCert, string(keyPEM)
		}
		rctx, cancel := c.rpcContext(cmd.Context())
		defer cancel()
		resp, err := client.IssueDeviceCredential(rctx, req)
		if err != nil {
			return err
		}
		creds.PSK, creds.Certificate, creds.CA = resp.GetPsk(), resp.GetCertificate(), resp.GetCaCertificate()
		data, err := creds.encode()
		if err != nil {
			return err
		}
		if err := f.commit(data); err != nil {
			return fmt.Errorf("%w (the credential was issued: enrol again)", err)
		}
		if c.flags.output == "json" {
			return writeJSON(c.stdout, resp.GetCredential())
		}
		_, err = fmt.Fprintf(c.stdout, "wrote the %s credential of %s (generation %d) to %s\n",
			creds.Kind, cell(devicesPrefix+id), resp.GetCredential().GetGeneration(), cell(out))
		return err
	})
}

func (c *cli) deviceCredentialCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "credential",
		Aliases: []string{"credentials"},
		Short:   "Show or revoke a device's DTLS credential",
		Long: `Show or revoke the DTLS credential a device holds. To rotate a credential,
enrol the device again ("device enroll"): the previous credential stops
working when the new one is issued.`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show a device's credential: kind, generation, issuer, revocation",
		Args:  exactArgs(1, "one device id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.credentialCall(cmd, args[0], func(ctx context.Context, client medfleetv1.CredentialServiceClient, name string) (*medfleetv1.DeviceCredential, error) {
				return client.GetDeviceCredential(ctx, &medfleetv1.GetDeviceCredentialRequest{Name: name})
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a device's credential at once",
		Long: `Revoke a device's credential: its DTLS session ends at its next request and
its next handshake fails, until it is enrolled again ("device enroll").
Revoking works on a decommissioned device too.`,
		Args: exactArgs(1, "one device id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.credentialCall(cmd, args[0], func(ctx context.Context, client medfleetv1.CredentialServiceClient, name string) (*medfleetv1.DeviceCredential, error) {
				return client.RevokeDeviceCredential(ctx, &medfleetv1.RevokeDeviceCredentialRequest{Name: name})
			})
		},
	}
	cmd.AddCommand(get, revoke)
	return cmd
}

// credentialCall runs one call on "devices/{id}/credential" and prints the
// credential it returns.
func (c *cli) credentialCall(cmd *cobra.Command, arg string, call func(context.Context, medfleetv1.CredentialServiceClient, string) (*medfleetv1.DeviceCredential, error)) error {
	// "pump-0001", "devices/pump-0001" or "devices/pump-0001/credential".
	id, err := parseDeviceID(strings.TrimSuffix(arg, "/credential"))
	if err != nil {
		return usageError{cmd: cmd.CommandPath(), err: err}
	}
	return c.withCredentialClient(cmd.Context(), func(client medfleetv1.CredentialServiceClient) error {
		rctx, cancel := c.rpcContext(cmd.Context())
		defer cancel()
		cred, err := call(rctx, client, devicesPrefix+id+"/credential")
		if err != nil {
			return err
		}
		if c.flags.output == "json" {
			return writeJSON(c.stdout, cred)
		}
		return writeCredential(c.stdout, cred, c.now())
	})
}
