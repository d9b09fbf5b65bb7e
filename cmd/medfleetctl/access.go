package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/medfleet/medfleet/internal/pki"
	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// usersPrefix is the collection part of a user's resource name.
const usersPrefix = "users/"

// userIDPattern is the user id as access.proto defines it.
var userIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// parseUserID accepts a bare user id ("alice") or a resource name
// ("users/alice") and returns the id.
func parseUserID(arg string) (string, error) {
	id := strings.TrimPrefix(arg, usersPrefix)
	if !userIDPattern.MatchString(id) {
		return "", fmt.Errorf("user id %q: want 1 to 64 characters of [a-z0-9._-], starting with a letter or digit", arg)
	}
	return id, nil
}

// roleNames are the roles as --role takes them, in the enum's order.
func roleNames() []string {
	var names []string
	for v := int32(1); ; v++ {
		name, ok := medfleetv1.Role_name[v]
		if !ok {
			return names
		}
		names = append(names, strings.ToLower(strings.TrimPrefix(name, "ROLE_")))
	}
}

// parseRole maps "biomed" (or "BIOMED", or "ROLE_BIOMED") to its enum value.
func parseRole(s string) (medfleetv1.Role, error) {
	up := strings.TrimPrefix(strings.ToUpper(s), "ROLE_")
	v, ok := medfleetv1.Role_value["ROLE_"+up]
	if !ok || v == int32(medfleetv1.Role_ROLE_UNSPECIFIED) {
		return 0, fmt.Errorf("--role: want one of %s, got %q", strings.Join(roleNames(), ", "), s)
	}
	return medfleetv1.Role(v), nil
}

// withAccessClient dials the server, runs fn and closes the connection.
func (c *cli) withAccessClient(ctx context.Context, fn func(medfleetv1.AccessServiceClient) error) error {
	return c.withConn(ctx, func(conn *grpc.ClientConn) error {
		return fn(medfleetv1.NewAccessServiceClient(conn))
	})
}

// printDeleted confirms a delete that returns Empty: the name in a table,
// {} with -o json, as the API answers.
func (c *cli) printDeleted(name string) error {
	if c.flags.output == "json" {
		return writeJSON(c.stdout, &emptypb.Empty{})
	}
	_, err := fmt.Fprintln(c.stdout, "deleted "+cell(name))
	return err
}

func (c *cli) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the server thinks you are: user, role, site, credential",
		Long: `Show the user the server authenticated the call as, its role, the site it is
confined to if any, and how it authenticated: "token", "certificate", or
"insecure" against a server run with --insecure-grpc. Any valid credential
may call it, whatever its role.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withAccessClient(cmd.Context(), func(client medfleetv1.AccessServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				caller, err := client.GetCaller(rctx, &medfleetv1.GetCallerRequest{})
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, caller)
				}
				return writeCaller(c.stdout, caller)
			})
		},
	}
}

func (c *cli) userCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "user",
		Aliases: []string{"users"},
		Short:   "Create, list and delete users; issue their client certificates",
		Long: `Users are the people and programs that call the API. Each has one role:
  admin       everything, including users, tokens and device credentials
  biomed      devices, maintenance, firmware and rollouts
  facility    read devices, locate them, set hygiene and availability
  automation  firmware uploads and rollouts, for CI and bots
and may be confined to one site. A user authenticates with a token ("token
create") or a client certificate ("user cert"). Every command here needs the
admin role.

Users are named by their id, as in "alice", or by their resource name, as in
"users/alice".`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(
		c.userCreateCommand(),
		c.userGetCommand(),
		c.userListCommand(),
		c.userDeleteCommand(),
		c.userCertCommand(),
	)
	return cmd
}

func (c *cli) userCreateCommand() *cobra.Command {
	var role, site, description string
	cmd := &cobra.Command{
		Use:   "create ID --role ROLE [flags]",
		Short: "Create a user",
		Long: `Create a user. A user has no credential yet: give it a token with "token
create" or a client certificate with "user cert".`,
		Example: `  medfleetctl user create alice --role biomed --site north --description "Alice Meyer, clinical engineering, ext. 4711"
  medfleetctl user create rollout-bot --role automation`,
		Args: exactArgs(1, "one user id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseUserID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if role == "" {
				return usageErrorf(cmd, "--role: required, one of %s", strings.Join(roleNames(), ", "))
			}
			r, err := parseRole(role)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			req := &medfleetv1.CreateUserRequest{
				UserId: id,
				User:   &medfleetv1.User{Role: r, Site: site, Description: description},
			}
			return c.withAccessClient(cmd.Context(), func(client medfleetv1.AccessServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				u, err := client.CreateUser(rctx, req)
				if err != nil {
					return err
				}
				return c.printUser(u)
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "role: "+strings.Join(roleNames(), ", "))
	cmd.Flags().StringVar(&site, "site", "", "confine the user to the devices of this site")
	cmd.Flags().StringVar(&description, "description", "", "who this is and how to reach them")
	return cmd
}

// printUser writes a user in the chosen output format.
func (c *cli) printUser(u *medfleetv1.User) error {
	if c.flags.output == "json" {
		return writeJSON(c.stdout, u)
	}
	return writeUser(c.stdout, u, c.now())
}

func (c *cli) userGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a user",
		Args:  exactArgs(1, "one user id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseUserID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withAccessClient(cmd.Context(), func(client medfleetv1.AccessServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				u, err := client.GetUser(rctx, &medfleetv1.GetUserRequest{Name: usersPrefix + id})
				if err != nil {
					return err
				}
				return c.printUser(u)
			})
		},
	}
}

func (c *cli) userListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every user",
		Long: `List every user, ordered by id, following the pages to the end. With -o json
the output is one ListUsersResponse holding every user.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp := &medfleetv1.ListUsersResponse{}
			err := c.withAccessClient(cmd.Context(), func(client medfleetv1.AccessServiceClient) error {
				var err error
				resp.Users, err = allPages(cmd.Context(), c, "list users", func(ctx context.Context, token string) ([]*medfleetv1.User, string, error) {
					r, err := client.ListUsers(ctx, &medfleetv1.ListUsersRequest{PageToken: token})
					return r.GetUsers(), r.GetNextPageToken(), err
				})
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, resp)
			}
			return writeUserTable(c.stdout, resp.GetUsers(), c.now())
		},
	}
}

// allPages calls list from the first page to the last, each call with its
// own deadline, and returns what the pages held.
func allPages[T any](ctx context.Context, c *cli, what string, list func(ctx context.Context, token string) ([]T, string, error)) ([]T, error) {
	var (
		all   []T
		token string
		seen  = make(map[string]bool)
	)
	for {
		rctx, cancel := c.rpcContext(ctx)
		items, next, err := list(rctx, token)
		cancel()
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		if seen[next] {
			return nil, fmt.Errorf("%s: the server returned page token %q twice", what, next)
		}
		seen[next] = true
		token = next
	}
}

func (c *cli) userDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a user and every token of theirs",
		Long: `Delete a user and every token of theirs. Their client certificates are
refused from then on. Nobody can delete themselves: another administrator
has to.`,
		Args: exactArgs(1, "one user id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseUserID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withAccessClient(cmd.Context(), func(client medfleetv1.AccessServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				if _, err := client.DeleteUser(rctx, &medfleetv1.DeleteUserRequest{Name: usersPrefix + id}); err != nil {
					return err
				}
				return c.printDeleted(usersPrefix + id)
			})
		},
	}
}

func (c *cli) userCertCommand() *cobra.Command {
	var (
		out      string
		validity daysFlag
		force    bool
	)
	cmd := &cobra.Command{
		Use:   "cert ID --out PREFIX [flags]",
		Short: "Issue a client certificate for a user",
		Long: `Issue a client certificate for a user, to authenticate with --cert and --key
instead of a token. The ECDSA P-256 key is made here and never leaves this
machine: the server signs a certificate request. The certificate goes to
PREFIX.crt (mode 0644) and the key to PREFIX.key (mode 0600); existing files
are not replaced unless --force.

The certificate is valid for --validity, at least 1h and at most 398d. It
names the user: deleting the user makes the server refuse it.

With -o json the output names the two files and when the certificate
expires.`,
		Example: `  medfleetctl user cert alice --out ./alice --validity 30d
  medfleetctl --cert ./alice.crt --key ./alice.key whoami`,
		Args: exactArgs(1, "one user id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseUserID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if out == "" {
				return usageErrorf(cmd, "--out: required, the prefix of the .crt and .key files")
			}
			if validity == 0 {
				return usageErrorf(cmd, "--validity: must be positive")
			}
			return c.withAccessClient(cmd.Context(), func(client medfleetv1.AccessServiceClient) error {
				certFile, err := createOutFile("--out", out+".crt", 0o644, force)
				if err != nil {
					return err
				}
				defer certFile.abort()
				keyFile, err := createOutFile("--out", out+".key", 0o600, force)
				if err != nil {
					return err
				}
				defer keyFile.abort()

				key, err := pki.NewKey()
				if err != nil {
					return err
				}
				csr, err := pki.NewCSR(key, id)
				if err != nil {
					return err
				}
				keyPEM, err := pki.KeyPEM(key)
				if err != nil {
					return err
				}
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				resp, err := client.SignUserCertificate(rctx, &medfleetv1.SignUserCertificateRequest{
					Name:     usersPrefix + id,
					Csr:      csr,
					Validity: durationpb.New(time.Duration(validity)),
				})
				if err != nil {
					return err
				}
				notAfter, err := certificateExpiry(resp.GetCertificate())
				if err != nil {
					return fmt.Errorf("the server's certificate: %w", err)
				}
				if err := keyFile.commit(keyPEM); err != nil {
					return err
				}
				if err := certFile.commit([]byte(resp.GetCertificate())); err != nil {
					return err
				}
				files := userCertFiles{Certificate: certFile.path, PrivateKey: keyFile.path, ExpireTime: notAfter.UTC()}
				if c.flags.output == "json" {
					return writeJSONValue(c.stdout, files)
				}
				return writeUserCertFiles(c.stdout, files, c.now())
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write PREFIX.crt and PREFIX.key")
	validity = daysFlag(90 * 24 * time.Hour)
	cmd.Flags().Var(&validity, "validity", "how long the certificate is valid, e.g. 90d or 720h; 1h to 398d")
	cmd.Flags().BoolVar(&force, "force", false, "replace existing files")
	return cmd
}

// userCertFiles is what "user cert" made, as -o json writes it.
type userCertFiles struct {
	Certificate string    `json:"certificate_file"`
	PrivateKey  string    `json:"private_key_file"`
	ExpireTime  time.Time `json:"expire_time"`
}

// certificateExpiry returns the NotAfter of the first certificate in PEM.
func certificateExpiry(certPEM string) (time.Time, error) {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return time.Time{}, errors.New("not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, err
	}
	return cert.NotAfter, nil
}

func (c *cli) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "token",
		Aliases: []string{"tokens"},
		Short:   "Create, list and revoke users' API tokens",
		Long: `API tokens authenticate a user: the bearer string mft_{id}_{secret}, given
to medfleetctl in MEDFLEET_TOKEN or a --token-file. The server keeps only a
hash of the secret, so a token is shown once, when it is created. Every
command here needs the admin role.`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(c.tokenCreateCommand(), c.tokenListCommand(), c.tokenDeleteCommand())
	return cmd
}

func (c *cli) tokenCreateCommand() *cobra.Command {
	var (
		ttl               daysFlag
		site, description string
	)
	cmd := &cobra.Command{
		Use:   "create USER [flags]",
		Short: "Create a token for a user and print it, once",
		Long: `Create a token for a user and print it on stdout, alone, so that a script can
capture it; a warning that it is shown only now goes to stderr. With -o json
the output is the CreateTokenResponse, secret included.

The token expires after --ttl (default 30 days); --ttl 0 makes one that
never expires. --site confines the token to one site; for a user confined to
a site it must be that site.`,
		Example: `  medfleetctl token create rollout-bot --ttl 90d --description "CI rollouts" > bot.token
  MEDFLEET_TOKEN=$(medfleetctl token create alice --ttl 8h) medfleetctl whoami`,
		Args: exactArgs(1, "one user id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseUserID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			req := &medfleetv1.CreateTokenRequest{
				Parent: usersPrefix + id,
				Token:  &medfleetv1.Token{Site: site, Description: description},
			}
			if ttl > 0 {
				req.Ttl = durationpb.New(time.Duration(ttl))
			}
			return c.withAccessClient(cmd.Context(), func(client medfleetv1.AccessServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				resp, err := client.CreateToken(rctx, req)
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					err = writeJSON(c.stdout, resp)
				} else {
					_, err = fmt.Fprintln(c.stdout, resp.GetSecret())
				}
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(c.stderr, tokenWarning(resp.GetToken()))
				return err
			})
		},
	}
	ttl = daysFlag(30 * 24 * time.Hour)
	cmd.Flags().Var(&ttl, "ttl", "how long the token is valid, e.g. 30d or 8h; 0: forever")
	cmd.Flags().StringVar(&site, "site", "", "confine the token to the devices of this site")
	cmd.Flags().StringVar(&description, "description", "", "what the token is for")
	return cmd
}

// tokenWarning is the line on stderr after a token was printed.
func tokenWarning(t *medfleetv1.Token) string {
	s := "medfleetctl: token " + cell(t.GetName()) + " is shown only now: store it"
	if e := t.GetExpireTime(); e != nil {
		s += "; it expires " + e.AsTime().UTC().Format(time.RFC3339)
	} else {
		s += "; it never expires"
	}
	return s
}

func (c *cli) tokenListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list [USER]",
		Short: "List the tokens of a user, or of every user",
		Long: `List the tokens of a user, or without USER of every user, following the
pages to the end. Secrets are never shown: the server does not have them.
With -o json the output is one ListTokensResponse holding every token.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf(cmd, "%swant at most one user id, got %d", subPath(cmd), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			parent := usersPrefix + "-"
			if len(args) == 1 {
				id, err := parseUserID(args[0])
				if err != nil {
					return usageError{cmd: cmd.CommandPath(), err: err}
				}
				parent = usersPrefix + id
			}
			resp := &medfleetv1.ListTokensResponse{}
			err := c.withAccessClient(cmd.Context(), func(client medfleetv1.AccessServiceClient) error {
				var err error
				resp.Tokens, err = allPages(cmd.Context(), c, "list tokens", func(ctx context.Context, token string) ([]*medfleetv1.Token, string, error) {
					r, err := client.ListTokens(ctx, &medfleetv1.ListTokensRequest{Parent: parent, PageToken: token})
					return r.GetTokens(), r.GetNextPageToken(), err
				})
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, resp)
			}
			return writeTokenTable(c.stdout, resp.GetTokens(), c.now())
		},
	}
}

func (c *cli) tokenDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "delete USER TOKEN-ID",
		Aliases: []string{"revoke"},
		Short:   "Revoke a token at once",
		Example: `  medfleetctl token delete rollout-bot 3f9a1c2b`,
		Args:    exactArgs(2, "a user id and a token id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseUserID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			tok := args[1]
			// A token id as "token list" prints it, or its resource name.
			if rest, ok := strings.CutPrefix(tok, usersPrefix+id+"/tokens/"); ok {
				tok = rest
			}
			if tok == "" || strings.ContainsAny(tok, "/ ") || slices.Contains([]string{".", ".."}, tok) {
				return usageErrorf(cmd, "token id %q: want the id that \"token list\" shows", args[1])
			}
			name := usersPrefix + id + "/tokens/" + tok
			return c.withAccessClient(cmd.Context(), func(client medfleetv1.AccessServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				if _, err := client.DeleteToken(rctx, &medfleetv1.DeleteTokenRequest{Name: name}); err != nil {
					return err
				}
				return c.printDeleted(name)
			})
		},
	}
}
