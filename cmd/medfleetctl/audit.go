package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/medfleet/medfleet/audit/chain"
	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// auditPageSize is the largest page the server returns.
const auditPageSize = 1000

func (c *cli) auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the audit log",
		Long: `The audit log records every mutation made through the API, allowed or
refused, and device registrations, in an append-only hash chain: each record
carries the hash of the one before it. Reading it needs the audit permission
(the admin role) and a caller not confined to a site.`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(c.auditListCommand(), c.auditVerifyCommand())
	return cmd
}

// withAuditClient dials the server, runs fn and closes the connection.
func (c *cli) withAuditClient(ctx context.Context, fn func(medfleetv1.AuditServiceClient) error) error {
	return c.withConn(ctx, func(conn *grpc.ClientConn) error {
		return fn(medfleetv1.NewAuditServiceClient(conn))
	})
}

const auditListLong = `List audit records, oldest first: those after sequence --start, at most
--limit of them (0: all), matching --filter.

The filter is AIP-160: conjunctions of actor, role, action, target and
outcome with = or !=, and time with >=, >, <= or < against an RFC 3339 time:
  --filter 'actor = "users/alice" AND time >= "2026-11-01T00:00:00Z"'
  --filter 'outcome != "OK"'
  --filter 'action = "/medfleet.v1.DeviceService/DeleteDevice"'
The table shows only the method of an API action ("DeleteDevice"); filters
and -o json use the full name.

When more records may follow, the footer gives the --start that continues.
With -o json the output is one ListAuditRecordsResponse with the records
shown and the log's head.`

func (c *cli) auditListCommand() *cobra.Command {
	var (
		filter string
		start  uint64
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List audit records",
		Long:  auditListLong,
		Example: `  medfleetctl audit list --filter 'target = "devices/pump-0001"'
  medfleetctl audit list --start 1200 --limit 0 -o json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageErrorf(cmd, "--limit: must not be negative, got %d", limit)
			}
			var resp *medfleetv1.ListAuditRecordsResponse
			err := c.withAuditClient(cmd.Context(), func(client medfleetv1.AuditServiceClient) error {
				var err error
				resp, err = c.listAudit(cmd.Context(), client, filter, start, limit)
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, resp)
			}
			return writeAuditTable(c.stdout, resp)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&filter, "filter", "", "AIP-160 filter on actor, role, action, target, outcome and time")
	fl.Uint64Var(&start, "start", 0, "list the records after this sequence number")
	fl.IntVar(&limit, "limit", 100, "list at most this many records; 0: all")
	return cmd
}

// listAudit reads pages until limit records (0: no limit) or the end of the
// log. The response holds the records, the head of the last page read, and
// its next page token when the limit stopped the listing.
func (c *cli) listAudit(ctx context.Context, client medfleetv1.AuditServiceClient, filter string, start uint64, limit int) (*medfleetv1.ListAuditRecordsResponse, error) {
	merged := &medfleetv1.ListAuditRecordsResponse{}
	req := &medfleetv1.ListAuditRecordsRequest{Filter: filter, StartSequence: start}
	seen := make(map[string]bool)
	for {
		req.PageSize = auditPageSize
		if limit > 0 {
			req.PageSize = int32(min(limit-len(merged.Records), auditPageSize))
		}
		rctx, cancel := c.rpcContext(ctx)
		resp, err := client.ListAuditRecords(rctx, req)
		cancel()
		if err != nil {
			return nil, err
		}
		merged.Records = append(merged.Records, resp.GetRecords()...)
		merged.HeadSequence, merged.HeadHash = resp.GetHeadSequence(), resp.GetHeadHash()
		merged.NextPageToken = resp.GetNextPageToken()
		next := resp.GetNextPageToken()
		if next == "" || limit > 0 && len(merged.Records) >= limit {
			return merged, nil
		}
		if seen[next] {
			return nil, fmt.Errorf("list audit records: the server returned page token %q twice", next)
		}
		seen[next] = true
		req.PageToken = next
	}
}

const auditVerifyLong = `Verify the audit log: read every record, oldest first, recompute each
record's hash and check that it links to the one before it and that the
chain ends at the log's head. A record that was changed, removed, inserted
or reordered breaks the chain.

On success it prints the number of records and the head, its sequence and
the first 16 hex digits of its hash, and exits 0. Compare the head with one
noted earlier (or kept elsewhere) to know that nothing before it changed.

When the chain is broken it names the first record at which it does not
hold, and exits 1. Other failures exit as every command does: 7 when the
server cannot be reached, 8 without the permission to read the log.
With -o json the result is a JSON object with "verified" true or false.`

func (c *cli) auditVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit log's hash chain; exit 1 if it is broken",
		Long:  auditVerifyLong,
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res auditVerification
			err := c.withAuditClient(cmd.Context(), func(client medfleetv1.AuditServiceClient) error {
				var err error
				res, err = c.verifyAudit(cmd.Context(), client)
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				err = writeJSONValue(c.stdout, res)
			} else if res.Verified {
				_, err = fmt.Fprintln(c.stdout, res.summary())
			}
			if err != nil {
				return err
			}
			if !res.Verified {
				return res.broken
			}
			return nil
		},
	}
}

// auditVerification is the result of "audit verify", as -o json writes it.
type auditVerification struct {
	Verified bool `json:"verified"`
	// Records is how many records passed.
	Records uint64 `json:"records"`
	// The head the chain was checked against.
	HeadSequence uint64 `json:"head_sequence"`
	HeadHash     string `json:"head_hash,omitempty"` // hex
	// The first record at which the chain does not hold.
	BrokenSequence uint64 `json:"broken_sequence,omitempty"`
	Reason         string `json:"reason,omitempty"`

	broken *auditBrokenError
}

func (v auditVerification) summary() string {
	head := fmt.Sprintf("head %d", v.HeadSequence)
	if len(v.HeadHash) >= 16 {
		head += " " + v.HeadHash[:16]
	}
	noun := "records"
	if v.Records == 1 {
		noun = "record"
	}
	return fmt.Sprintf("audit log verified: %d %s, %s", v.Records, noun, head)
}

// auditBrokenError is a chain that does not hold: an error that is not a
// gRPC status, so that it exits 1.
type auditBrokenError struct {
	err      *chain.BrokenError
	verified uint64
}

func (e *auditBrokenError) Error() string {
	s := fmt.Sprintf("audit log broken at record %d: %s", e.err.Sequence, e.err.Reason)
	switch e.verified {
	case 0:
	case 1:
		s += " (record 1 verified)"
	default:
		s += fmt.Sprintf(" (records 1 to %d verified)", e.verified)
	}
	return s
}

func (e *auditBrokenError) Unwrap() error { return e.err }

// verifyAudit pages through the whole log with the largest pages and
// checks it with chain.Verifier. A broken chain is a result, not an error;
// errors are the calls'.
func (c *cli) verifyAudit(ctx context.Context, client medfleetv1.AuditServiceClient) (auditVerification, error) {
	v := chain.NewVerifier()
	req := &medfleetv1.ListAuditRecordsRequest{PageSize: auditPageSize}
	seen := make(map[string]bool)
	var res auditVerification
	var err error
	for {
		rctx, cancel := c.rpcContext(ctx)
		resp, lerr := client.ListAuditRecords(rctx, req)
		cancel()
		if lerr != nil {
			return res, lerr
		}
		for _, r := range resp.GetRecords() {
			if err = v.Add(r); err != nil {
				break
			}
		}
		res.HeadSequence, res.HeadHash = resp.GetHeadSequence(), hex.EncodeToString(resp.GetHeadHash())
		next := resp.GetNextPageToken()
		if err != nil || next == "" {
			if err == nil {
				err = v.Done(resp.GetHeadSequence(), resp.GetHeadHash())
			}
			break
		}
		if seen[next] {
			return res, fmt.Errorf("list audit records: the server returned page token %q twice", next)
		}
		seen[next] = true
		req.PageToken = next
	}
	res.Records = v.Count()
	var be *chain.BrokenError
	switch {
	case err == nil:
		res.Verified = true
	case errors.As(err, &be):
		res.BrokenSequence, res.Reason = be.Sequence, be.Reason
		res.broken = &auditBrokenError{err: be, verified: v.Count()}
	default:
		return res, err
	}
	return res, nil
}
