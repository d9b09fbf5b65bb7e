package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/maintenance/recall"
	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// recallsPrefix is the collection part of a recall's resource name.
const recallsPrefix = "recalls/"

// recallIDPattern is an FDA recall number, as the server checks it.
var recallIDPattern = regexp.MustCompile(`^[A-Z]-[0-9]{4}-[0-9]{2,4}$`)

// parseRecallID accepts "Z-0557-04" or "recalls/Z-0557-04".
func parseRecallID(arg string) (string, error) {
	id := strings.TrimPrefix(arg, recallsPrefix)
	if !recallIDPattern.MatchString(id) {
		return "", fmt.Errorf("recall %q: want an FDA recall number, as in Z-0557-04", arg)
	}
	return id, nil
}

// matchStates maps --state to the API's match states.
var matchStates = map[string]medfleetv1.RecallMatchState{
	"":          medfleetv1.RecallMatchState_RECALL_MATCH_STATE_UNSPECIFIED,
	"pending":   medfleetv1.RecallMatchState_RECALL_MATCH_STATE_PENDING,
	"confirmed": medfleetv1.RecallMatchState_RECALL_MATCH_STATE_CONFIRMED,
	"dismissed": medfleetv1.RecallMatchState_RECALL_MATCH_STATE_DISMISSED,
}

func (c *cli) withRecallClient(ctx context.Context, fn func(medfleetv1.RecallServiceClient) error) error {
	return c.withConn(ctx, func(conn *grpc.ClientConn) error {
		return fn(medfleetv1.NewRecallServiceClient(conn))
	})
}

func (c *cli) recallCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "recall",
		Aliases: []string{"recalls"},
		Short:   "Import FDA device recalls, review their matches to the fleet, confirm or dismiss them",
		Long: `Recalls come from openFDA's device/recall data (api.fda.gov/device/recall.json,
or the bulk download at open.fda.gov). "recall import" stores them and
matches them to the fleet by product code, model and the lot and serial
numbers their code information lists. Each match waits for a person:
"recall confirm" takes the device out of service and opens a recall work
order; "recall dismiss" records why it is not affected.`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(c.recallImportCommand(), c.recallListCommand(), c.recallGetCommand(), c.recallMatchesCommand(),
		c.recallDecideCommand("confirm"), c.recallDecideCommand("dismiss"))
	return cmd
}

func (c *cli) recallImportCommand() *cobra.Command {
	var (
		file   string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "import -f FILE [--dry-run]",
		Short: "Import recalls from an openFDA device/recall JSON file and match them",
		Example: `  curl -o recalls.json 'https://api.fda.gov/device/recall.json?search=product_code:FRN&limit=1000'
  medfleetctl recall import -f recalls.json
  medfleetctl recall import -f examples/recalls/openfda-device-recall.json --dry-run`,
		Args: exactArgs(0, "no arguments; the file is -f FILE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf(cmd, "-f: required, an openFDA device/recall JSON file")
			}
			f, err := os.Open(file)
			if err != nil {
				return usageErrorf(cmd, "-f %q: %v", file, unwrapPath(err))
			}
			defer f.Close()
			recalls, err := recall.ParseOpenFDA(f)
			if err != nil {
				return usageErrorf(cmd, "-f %q: %v", file, err)
			}
			total := &medfleetv1.ImportRecallsResponse{}
			err = c.withRecallClient(cmd.Context(), func(client medfleetv1.RecallServiceClient) error {
				for start := 0; start < len(recalls); start += 500 {
					req := &medfleetv1.ImportRecallsRequest{ValidateOnly: dryRun}
					for _, r := range recalls[start:min(start+500, len(recalls))] {
						req.Recalls = append(req.Recalls, recallProto(r))
					}
					rctx, cancel := c.rpcContext(cmd.Context())
					resp, err := client.ImportRecalls(rctx, req)
					cancel()
					if err != nil {
						return err
					}
					total.Created += resp.GetCreated()
					total.Updated += resp.GetUpdated()
					total.Unchanged += resp.GetUnchanged()
					total.Matches += resp.GetMatches()
					total.NewMatches += resp.GetNewMatches()
				}
				return nil
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, total)
			}
			suffix := ""
			if dryRun {
				suffix = " (--dry-run: nothing stored)"
			}
			_, err = fmt.Fprintf(c.stdout, "%s: %s: %d new, %d changed, %d unchanged; %s, %d new%s\n", file,
				countNoun(len(recalls), "recall"), total.Created, total.Updated, total.Unchanged,
				countNoun(int(total.Matches), "match"), total.NewMatches, suffix)
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "openFDA device/recall JSON")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "match and report; store nothing")
	return cmd
}

// recallProto is a parsed openFDA recall as the API takes it.
func recallProto(r recall.Recall) *medfleetv1.Recall {
	ts := func(t time.Time) *timestamppb.Timestamp {
		if t.IsZero() {
			return nil
		}
		return timestamppb.New(t)
	}
	return &medfleetv1.Recall{ProductResNumber: r.ID, CfresId: r.CFRESID, EventNumber: r.EventNumber, Status: r.Status,
		InitiateTime: ts(r.Initiated), PostTime: ts(r.Posted), TerminateTime: ts(r.Terminated), ProductCode: r.ProductCode,
		KNumbers: r.KNumbers, ProductDescription: r.ProductDescription, CodeInfo: r.CodeInfo, Firm: r.Firm, Reason: r.Reason,
		RootCause: r.RootCause, Action: r.Action}
}

func (c *cli) recallListCommand() *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:     "list [--state pending]",
		Short:   "List recalls, newest first, with their matches by state",
		Example: `  medfleetctl recall list --state pending`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, ok := matchStates[state]
			if !ok {
				return usageErrorf(cmd, "--state: want pending, confirmed or dismissed, got %q", state)
			}
			return c.withRecallClient(cmd.Context(), func(client medfleetv1.RecallServiceClient) error {
				resp := &medfleetv1.ListRecallsResponse{}
				for token := ""; ; {
					rctx, cancel := c.rpcContext(cmd.Context())
					page, err := client.ListRecalls(rctx, &medfleetv1.ListRecallsRequest{MatchState: st, PageSize: 1000, PageToken: token})
					cancel()
					if err != nil {
						return err
					}
					resp.Recalls = append(resp.Recalls, page.GetRecalls()...)
					if token = page.GetNextPageToken(); token == "" {
						break
					}
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, resp)
				}
				return writeRecalls(c.stdout, resp.GetRecalls())
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only recalls with a match in this state: pending, confirmed or dismissed")
	return cmd
}

func writeRecalls(w io.Writer, rs []*medfleetv1.Recall) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "RECALL\tINITIATED\tCODE\tFIRM\tPENDING\tCONFIRMED\tDISMISSED\tSTATUS")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.GetProductResNumber(), date(r.GetInitiateTime()), cell(r.GetProductCode()),
			cell(clip(r.GetFirm(), 30)), r.GetPendingMatches(), r.GetConfirmedMatches(), r.GetDismissedMatches(), cell(r.GetStatus()))
	}
	return tw.Flush()
}

func (c *cli) recallGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get RECALL",
		Short: "Show a recall: what it is, what its code information names, its matches by state",
		Args:  exactArgs(1, "one recall number"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRecallID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withRecallClient(cmd.Context(), func(client medfleetv1.RecallServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				r, err := client.GetRecall(rctx, &medfleetv1.GetRecallRequest{Name: recallsPrefix + id})
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, r)
				}
				return writeRecall(c.stdout, r)
			})
		},
	}
}

func writeRecall(w io.Writer, r *medfleetv1.Recall) error {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-*s%s\n", detailKeyWidth, k+":", v) }
	list := func(vs []string) string {
		if len(vs) == 0 {
			return "-"
		}
		return strings.Join(vs, ", ")
	}
	line("name", r.GetName())
	line("status", cell(r.GetStatus()))
	line("initiated", date(r.GetInitiateTime()))
	line("firm", cell(r.GetFirm()))
	line("product code", cell(r.GetProductCode()))
	line("product", cell(r.GetProductDescription()))
	line("code info", cell(r.GetCodeInfo()))
	line("reason", cell(r.GetReason()))
	line("action", cell(r.GetAction()))
	c := r.GetCodes()
	line("models", list(c.GetModels()))
	line("lots", list(c.GetLots()))
	line("serials", list(c.GetSerials()))
	if c.GetAll() {
		line("scope", "all units of the models named")
	}
	line("matches", fmt.Sprintf("%d pending, %d confirmed, %d dismissed", r.GetPendingMatches(), r.GetConfirmedMatches(), r.GetDismissedMatches()))
	_, err := io.WriteString(w, b.String())
	return err
}

func (c *cli) recallMatchesCommand() *cobra.Command {
	var recallArg, state, device string
	cmd := &cobra.Command{
		Use:   "matches [--recall R] [--state pending] [--device D]",
		Short: "List matches of recalls to devices: the review list",
		Example: `  medfleetctl recall matches --state pending
  medfleetctl recall matches --recall Z-0557-04`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, ok := matchStates[state]
			if !ok {
				return usageErrorf(cmd, "--state: want pending, confirmed or dismissed, got %q", state)
			}
			req := &medfleetv1.ListRecallMatchesRequest{State: st, PageSize: 1000}
			if recallArg != "" {
				id, err := parseRecallID(recallArg)
				if err != nil {
					return usageError{cmd: cmd.CommandPath(), err: err}
				}
				req.Recall = recallsPrefix + id
			}
			if device != "" {
				id, err := parseDeviceID(device)
				if err != nil {
					return usageError{cmd: cmd.CommandPath(), err: err}
				}
				req.Device = devicesPrefix + id
			}
			return c.withRecallClient(cmd.Context(), func(client medfleetv1.RecallServiceClient) error {
				resp := &medfleetv1.ListRecallMatchesResponse{}
				for {
					rctx, cancel := c.rpcContext(cmd.Context())
					page, err := client.ListRecallMatches(rctx, req)
					cancel()
					if err != nil {
						return err
					}
					resp.Matches = append(resp.Matches, page.GetMatches()...)
					if req.PageToken = page.GetNextPageToken(); req.PageToken == "" {
						break
					}
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, resp)
				}
				return writeRecallMatches(c.stdout, resp.GetMatches())
			})
		},
	}
	cmd.Flags().StringVar(&recallArg, "recall", "", "only this recall's matches")
	cmd.Flags().StringVar(&state, "state", "", "only matches in this state: pending, confirmed or dismissed")
	cmd.Flags().StringVar(&device, "device", "", "only this device's matches")
	return cmd
}

func writeRecallMatches(w io.Writer, ms []*medfleetv1.RecallMatch) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "RECALL\tDEVICE\tMODEL\tSERIAL\tLOT\tSTRENGTH\tSTATE\tWHY")
	word := func(s fmt.Stringer, prefix string) string {
		return strings.ToLower(strings.TrimPrefix(s.String(), prefix))
	}
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", strings.TrimPrefix(m.GetRecall(), recallsPrefix),
			strings.TrimPrefix(m.GetDevice(), devicesPrefix), cell(m.GetModel()), cell(m.GetSerial()), cell(m.GetLot()),
			word(m.GetStrength(), "RECALL_MATCH_STRENGTH_"), word(m.GetState(), "RECALL_MATCH_STATE_"), strings.Join(m.GetBasis(), "; "))
	}
	return tw.Flush()
}

// recallDecideCommand is "recall confirm" or "recall dismiss".
func (c *cli) recallDecideCommand(verb string) *cobra.Command {
	var note string
	short := "The device is affected: take it out of service and open a recall work order"
	if verb == "dismiss" {
		short = "The device is not affected (--note says why)"
	}
	cmd := &cobra.Command{
		Use:     verb + " RECALL DEVICE [--note TEXT]",
		Short:   short,
		Example: fmt.Sprintf(`  medfleetctl recall %s Z-0557-04 bme-004150 --note "serial on the label checked"`, verb),
		Args:    exactArgs(2, "a recall number and a device id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRecallID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			device, err := parseDeviceID(args[1])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if verb == "dismiss" && strings.TrimSpace(note) == "" {
				return usageErrorf(cmd, "--note: required, why the device is not affected")
			}
			name := recallsPrefix + id + "/matches/" + device
			return c.withRecallClient(cmd.Context(), func(client medfleetv1.RecallServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				var m *medfleetv1.RecallMatch
				var err error
				if verb == "confirm" {
					m, err = client.ConfirmRecallMatch(rctx, &medfleetv1.ConfirmRecallMatchRequest{Name: name, Note: note})
				} else {
					m, err = client.DismissRecallMatch(rctx, &medfleetv1.DismissRecallMatchRequest{Name: name, Note: note})
				}
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, m)
				}
				s := fmt.Sprintf("%s: %s", name, strings.ToLower(strings.TrimPrefix(m.GetState().String(), "RECALL_MATCH_STATE_")))
				if verb == "confirm" {
					s += "; devices/" + device + " is out of service"
				}
				if m.GetWorkOrder() != "" {
					s += "; work order " + m.GetWorkOrder()
				}
				_, err = fmt.Fprintln(c.stdout, s)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "what was checked; required to dismiss")
	return cmd
}

// date is a timestamp's UTC date, "-" when unset.
func date(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.DateOnly)
}

// clip shortens s to n runes.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
