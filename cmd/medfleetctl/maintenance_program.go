package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/maintenance"
	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// maintenanceProgramCommands are the subcommands of the maintenance noun
// that read the maintenance program of the server: the due list, the
// compliance report and a device's record.
func (c *cli) maintenanceProgramCommands() []*cobra.Command {
	return []*cobra.Command{
		c.maintenanceDueCommand(),
		c.maintenanceReportCommand(),
		c.maintenanceRecordCommand(),
		c.maintenanceReliabilityCommand(),
		c.maintenanceTrainCommand(),
	}
}

// duePageSize is the largest page the server returns.
const duePageSize = 1000

const maintenanceDueLong = `List the maintenance tasks that are overdue or fall due within --within
(default 30d; a duration such as 90d or 720h), most urgent first: overdue,
then life support, then high risk, then by due date. Every device needs an
acceptance check before use: a new device shows one at once.

REASON is the trigger that makes the task due first: calendar, usage (the
device's projected use), condition (a reported indicator), or acceptance.
DUE is the due date and how far off it is; "overdue" once the task's due
window has passed. WORK ORDER is the open order for the task, if any.

When the server knows where devices were last seen, the list is grouped by
location, most urgent location first.

--model takes a model id of the catalogue ("model list"), --unit the
device label "unit". --limit stops after that many items (0: all). With
-o json the output is one ListDueItemsResponse.`

func (c *cli) maintenanceDueCommand() *cobra.Command {
	var (
		within                     daysFlag
		profile, model, site, unit string
		limit                      int
	)
	cmd := &cobra.Command{
		Use:   "due [flags]",
		Short: "List the maintenance tasks due, most urgent first",
		Long:  maintenanceDueLong,
		Example: `  medfleetctl maintenance due --within 14d --unit 4-west
  medfleetctl maintenance due --model bd-alaris-8100 --limit 20 -o json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageErrorf(cmd, "--limit: must not be negative, got %d", limit)
			}
			req := &medfleetv1.ListDueItemsRequest{
				Within:   durationpb.New(time.Duration(within)),
				Profile:  profile,
				Site:     site,
				Unit:     unit,
				PageSize: duePageSize,
			}
			if limit > 0 {
				req.PageSize = int32(min(limit, duePageSize))
			}
			if model != "" {
				id, err := parseModelID(model)
				if err != nil {
					return usageErrorf(cmd, "--model: %v", err)
				}
				req.Model = id
			}
			var (
				items []*medfleetv1.DueItem
				total int32
			)
			err := c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				var err error
				shown := 0
				items, err = allPages(cmd.Context(), c, "list due items", func(ctx context.Context, token string) ([]*medfleetv1.DueItem, string, error) {
					req.PageToken = token
					resp, err := client.ListDueItems(ctx, req)
					total, shown = resp.GetTotalSize(), shown+len(resp.GetItems())
					next := resp.GetNextPageToken()
					if limit > 0 && shown >= limit {
						next = "" // enough: stop paging
					}
					return resp.GetItems(), next, err
				})
				if limit > 0 && len(items) > limit {
					items = items[:limit]
				}
				return err
			})
			if err != nil {
				return err
			}
			resp := &medfleetv1.ListDueItemsResponse{Items: items, TotalSize: total}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, resp)
			}
			return writeDueTable(c.stdout, resp, c.now())
		},
	}
	fl := cmd.Flags()
	within = daysFlag(30 * oneDay)
	fl.Var(&within, "within", "include tasks due within this horizon, e.g. 30d or 720h")
	fl.StringVar(&profile, "profile", "", "only devices of this profile")
	fl.StringVar(&model, "model", "", "only devices of this model `id`")
	fl.StringVar(&site, "site", "", "only devices of this site")
	fl.StringVar(&unit, "unit", "", "only devices whose label unit is this")
	fl.IntVar(&limit, "limit", 0, "at most this many items (0: all)")
	return cmd
}

// dueCell is a due date and how far off it is in calendar (UTC) days:
// "2026-03-04 (in 3d)", "2026-03-01 (today)", "2026-02-24 (5d ago)" while
// in its window, "2026-01-24 (36d overdue)" after it.
func dueCell(due *timestamppb.Timestamp, now time.Time, overdue bool) string {
	if due == nil {
		return "-"
	}
	at := due.AsTime().UTC()
	y, m, d := now.UTC().Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	y, m, d = at.Date()
	days := int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Sub(today) / oneDay)
	var rel string
	switch {
	case overdue:
		rel = fmt.Sprintf("%dd overdue", max(-days, 0))
	case days > 0:
		rel = fmt.Sprintf("in %dd", days)
	case days < 0:
		rel = fmt.Sprintf("%dd ago", -days)
	default:
		rel = "today"
	}
	return at.Format(dateLayout) + " (" + rel + ")"
}

// writeDueTable writes the due list with a footer that counts it. When
// items carry a location, a LOCATION column leads and the items are
// grouped by it, the groups in the order of their most urgent item.
func writeDueTable(w io.Writer, resp *medfleetv1.ListDueItemsResponse, now time.Time) error {
	items := resp.GetItems()
	byLocation := slices.ContainsFunc(items, func(it *medfleetv1.DueItem) bool { return it.GetLocation() != "" })
	if byLocation {
		var order []string
		for _, it := range items {
			if !slices.Contains(order, it.GetLocation()) {
				order = append(order, it.GetLocation())
			}
		}
		items = slices.Clone(items)
		slices.SortStableFunc(items, func(a, b *medfleetv1.DueItem) int {
			return slices.Index(order, a.GetLocation()) - slices.Index(order, b.GetLocation())
		})
	}
	overdue := 0
	if len(items) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		header := "DEVICE\tTASK\tKIND\tREASON\tDUE\tRISK\tWORK ORDER\tDETAIL"
		if byLocation {
			header = "LOCATION\t" + header
		}
		fmt.Fprintln(tw, header)
		for _, it := range items {
			if it.GetOverdue() {
				overdue++
			}
			row := []string{
				cell(deviceID(it.GetDevice())),
				cell(it.GetTaskId()),
				cell(maintenance.KindName(it.GetKind())),
				dueReasonWord(it.GetReason()),
				dueCell(it.GetDueTime(), now, it.GetOverdue()),
				riskWord(it.GetHighRisk(), it.GetLifeSupport()),
				cell(strings.TrimPrefix(it.GetWorkOrder(), workOrdersPrefix)),
				cell(oneLine(it.GetDetail())),
			}
			if byLocation {
				row = append([]string{cell(it.GetLocation())}, row...)
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	s := countNoun(len(items), "due item")
	if total := int(resp.GetTotalSize()); total > len(items) {
		s = fmt.Sprintf("%d of %d due items", len(items), total)
	}
	if overdue > 0 {
		s += fmt.Sprintf(", %d overdue", overdue)
	}
	_, err := fmt.Fprintln(w, s)
	return err
}

const maintenanceReportLong = `Report the on-time completion of scheduled (preventive) maintenance over a
period, as The Joint Commission asks for it (EC.02.04.03: 100 % of high-risk
and life-support maintenance on time).

An order counts in the period its due window ends in: on time if completed
by the end of its window, late if completed after it, missed if not
completed and its window has ended. Orders still in their window, and
cancelled orders, do not count. The figures are given overall, for
high-risk and for life-support equipment, followed by the missed and late
orders.

--from and --to take dates (UTC days, both included) or RFC 3339 times (--to
then excluded). Output: a table; with -o json the ComplianceReport; with
--csv one CSV table (RFC 4180) with a header line, a row per scope (overall,
high_risk, life_support) and a row per missed or late order.`

func (c *cli) maintenanceReportCommand() *cobra.Command {
	var (
		from, to string
		csvOut   bool
	)
	cmd := &cobra.Command{
		Use:   "report --from DATE --to DATE [--csv]",
		Short: "Report on-time completion of scheduled maintenance over a period",
		Long:  maintenanceReportLong,
		Example: `  medfleetctl maintenance report --from 2026-01-01 --to 2026-03-31
  medfleetctl maintenance report --from 2026-01-01 --to 2026-12-31 --csv > pm-compliance-2026.csv`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usageErrorf(cmd, "--from and --to: required, the period of the report")
			}
			start, err := parseWhen("--from", from, startOfDay)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			end, err := parseWhen("--to", to, nextDay)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if !start.Before(end) {
				return usageErrorf(cmd, "--to: must be after --from")
			}
			if csvOut && c.flags.output == "json" {
				return usageErrorf(cmd, "--csv and -o json: give one output format")
			}
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				r, err := client.GetComplianceReport(rctx, &medfleetv1.GetComplianceReportRequest{
					StartTime: timestamppb.New(start),
					EndTime:   timestamppb.New(end),
				})
				if err != nil {
					return err
				}
				switch {
				case c.flags.output == "json":
					return writeJSON(c.stdout, r)
				case csvOut:
					return writeComplianceCSV(c.stdout, r)
				default:
					return writeComplianceReport(c.stdout, r)
				}
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first day (or time) of the period")
	cmd.Flags().StringVar(&to, "to", "", "last day of the period, included (or a time, excluded)")
	cmd.Flags().BoolVar(&csvOut, "csv", false, "write CSV instead of a table")
	return cmd
}

// complianceScopes are the figures of a report with their names.
func complianceScopes(r *medfleetv1.ComplianceReport) []struct {
	name string
	f    *medfleetv1.ComplianceFigures
} {
	return []struct {
		name string
		f    *medfleetv1.ComplianceFigures
	}{
		{"overall", r.GetOverall()},
		{"high_risk", r.GetHighRisk()},
		{"life_support", r.GetLifeSupport()},
	}
}

// complianceOrders are the missed and late orders of a report, with their
// outcome.
func complianceOrders(r *medfleetv1.ComplianceReport) (outcomes []string, orders []*medfleetv1.WorkOrder) {
	for _, o := range r.GetMissed() {
		outcomes, orders = append(outcomes, "missed"), append(orders, o)
	}
	for _, o := range r.GetLate() {
		outcomes, orders = append(outcomes, "late"), append(orders, o)
	}
	return outcomes, orders
}

// rfc3339 is a timestamp in UTC, "" when unset.
func rfc3339(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func percent(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// writeComplianceReport writes a report as the period, a table of the
// figures, and a table of the missed and late orders.
func writeComplianceReport(w io.Writer, r *medfleetv1.ComplianceReport) error {
	fmt.Fprintf(w, "period: %s to %s (end excluded)\n\n", rfc3339(r.GetStartTime()), rfc3339(r.GetEndTime()))
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tSCHEDULED\tON TIME\tLATE\tMISSED\tON TIME %")
	for _, s := range complianceScopes(r) {
		f := s.f
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", strings.ReplaceAll(s.name, "_", " "),
			f.GetScheduled(), f.GetOnTime(), f.GetLate(), f.GetMissed(), percent(f.GetOnTimePercent()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	outcomes, orders := complianceOrders(r)
	if len(orders) == 0 {
		_, err := fmt.Fprintln(w, "\nno missed or late orders")
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTCOME\tORDER\tDEVICE\tTASKS\tRISK\tWINDOW END\tCOMPLETED")
	for i, o := range orders {
		fmt.Fprintln(tw, strings.Join([]string{
			outcomes[i],
			cell(strings.TrimPrefix(o.GetName(), workOrdersPrefix)),
			cell(deviceID(o.GetDevice())),
			orderTasks(o),
			riskWord(o.GetHighRisk(), o.GetLifeSupport()),
			cell(rfc3339(o.GetWindowEndTime())),
			cell(rfc3339(o.GetCompleteTime())),
		}, "\t"))
	}
	return tw.Flush()
}

// complianceCSVHeader names the columns of --csv. A scope row (record
// overall, high_risk or life_support) fills the figures, an order row
// (record missed or late) the order's columns, its risk named as the
// scopes are.
var complianceCSVHeader = []string{
	"period_start", "period_end", "record",
	"scheduled", "on_time", "late", "missed", "on_time_percent",
	"work_order", "device", "tasks", "risk", "window_end", "completed",
}

// writeComplianceCSV writes a report as one CSV table.
func writeComplianceCSV(w io.Writer, r *medfleetv1.ComplianceReport) error {
	cw := csv.NewWriter(w)
	start, end := rfc3339(r.GetStartTime()), rfc3339(r.GetEndTime())
	rows := [][]string{complianceCSVHeader}
	for _, s := range complianceScopes(r) {
		f := s.f
		rows = append(rows, []string{start, end, s.name,
			strconv.Itoa(int(f.GetScheduled())), strconv.Itoa(int(f.GetOnTime())), strconv.Itoa(int(f.GetLate())),
			strconv.Itoa(int(f.GetMissed())), percent(f.GetOnTimePercent()),
			"", "", "", "", "", ""})
	}
	outcomes, orders := complianceOrders(r)
	for i, o := range orders {
		risk := ""
		switch {
		case o.GetLifeSupport():
			risk = "life_support"
		case o.GetHighRisk():
			risk = "high_risk"
		}
		rows = append(rows, []string{start, end, outcomes[i],
			"", "", "", "", "",
			o.GetName(), o.GetDevice(), strings.Join(o.GetTaskIds(), " "), risk,
			rfc3339(o.GetWindowEndTime()), rfc3339(o.GetCompleteTime())})
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}

func (c *cli) maintenanceRecordCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "record DEVICE",
		Short: "Show a device's maintenance record: service state, tasks done, failures",
		Long: `Show a device's maintenance record: whether it may be used (its service
state: needs_check before its acceptance check, in_service, or
out_of_service), when each task of its plan was last done, and the failures
its repairs recorded. A device never maintained needs a check.`,
		Args: exactArgs(1, "one device id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeviceID(strings.TrimSuffix(args[0], "/maintenance"))
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				r, err := client.GetDeviceMaintenance(rctx, &medfleetv1.GetDeviceMaintenanceRequest{Name: devicesPrefix + id + "/maintenance"})
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, r)
				}
				return writeDeviceMaintenance(c.stdout, r, c.now())
			})
		},
	}
}

// serviceStateWord is "needs_check", "in_service" or "out_of_service".
func serviceStateWord(s medfleetv1.ServiceState) string {
	return enumWord(s.String(), "SERVICE_STATE_")
}

// writeDeviceMaintenance writes a record as "key: value" lines, a table of
// the tasks done and a table of the failures.
func writeDeviceMaintenance(w io.Writer, r *medfleetv1.DeviceMaintenance, now time.Time) error {
	if err := writeKeyValues(w, [][2]string{
		{"name", cell(r.GetName())},
		{"service state", serviceStateWord(r.GetServiceState())},
		{"accepted firmware", cell(r.GetAcceptedFirmware())},
		{"etag", cell(r.GetEtag())},
	}); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(r.GetTasks()) == 0 {
		fmt.Fprintln(w, "no task done yet")
	} else {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "TASK\tLAST DONE\tUSAGE THEN (h)\tWORK ORDER")
		for _, t := range r.GetTasks() {
			fmt.Fprintln(tw, strings.Join([]string{
				cell(t.GetTaskId()),
				timeAndAge(t.GetLastDoneTime(), now, "-"),
				strconv.FormatFloat(t.GetLastDoneUsageHours(), 'f', 1, 64),
				cell(strings.TrimPrefix(t.GetLastWorkOrder(), workOrdersPrefix)),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(r.GetFailures()) == 0 {
		_, err := fmt.Fprintln(w, "no failures recorded")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "FAILURE\tTIME\tUSAGE (h)\tWORK ORDER")
	for _, f := range r.GetFailures() {
		fmt.Fprintln(tw, strings.Join([]string{
			cell(f.GetFailureCode()),
			timeAndAge(f.GetTime(), now, "-"),
			strconv.FormatFloat(f.GetUsageHours(), 'f', 1, 64),
			cell(strings.TrimPrefix(f.GetWorkOrder(), workOrdersPrefix)),
		}, "\t"))
	}
	return tw.Flush()
}

func (c *cli) maintenanceReliabilityCommand() *cobra.Command {
	var target float64
	cmd := &cobra.Command{
		Use:   "reliability MODEL",
		Short: "Fit the hours between failures of a model's devices, and judge its PM interval",
		Long: `Fit, per failure mode, a Weibull distribution (maximum likelihood, with the
devices still running counted as right-censored) to the operating hours
between the failures that repairs recorded on a model's devices, and judge
the plan's usage interval against it: too-short, adequate, too-long, or
pm-not-effective when the fit shows no wear-out (beta not above 1 with 90 %
confidence), where time-based replacement does not prevent failures.

BETA below 1 means early failures, 1 random ones, above 1 wear-out; ETA is
the hours by which 63 % fail; B10 the hours by which 10 % fail.
--target is the reliability an interval should keep (default 0.9).`,
		Args: exactArgs(1, "one model id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := strings.TrimPrefix(args[0], "models/")
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				r, err := client.GetReliabilityReport(rctx, &medfleetv1.GetReliabilityReportRequest{Model: "models/" + id, TargetReliability: target})
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, r)
				}
				return writeReliability(c.stdout, r)
			})
		},
	}
	cmd.Flags().Float64Var(&target, "target", 0, "reliability an interval should keep, between 0 and 1 (default 0.9)")
	return cmd
}

// writeReliability writes one row per failure mode.
func writeReliability(w io.Writer, r *medfleetv1.ReliabilityReport) error {
	if len(r.GetModes()) == 0 {
		_, err := fmt.Fprintf(w, "no failures recorded for %s\n", r.GetModel())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "FAILURE MODE\tFAILURES\tCENSORED\tBETA (90%)\tETA h (90%)\tB10 h\tINTERVAL\tVERDICT\tRECOMMENDED h")
	for _, m := range r.GetModes() {
		if m.GetError() != "" {
			fmt.Fprintf(tw, "%s\t%d\t%d\t-\t-\t-\t-\t%s\t-\n", cell(m.GetFailureCode()), m.GetFailures(), m.GetSuspensions(), cell(m.GetError()))
			continue
		}
		interval := "-"
		if m.GetTaskId() != "" {
			interval = fmt.Sprintf("%s %.0f h", m.GetTaskId(), m.GetIntervalHours())
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f (%.2f-%.2f)\t%.0f (%.0f-%.0f)\t%.0f\t%s\t%s\t%.0f\n", cell(m.GetFailureCode()), m.GetFailures(), m.GetSuspensions(),
			m.GetBeta(), m.GetBetaLower(), m.GetBetaUpper(), m.GetEtaHours(), m.GetEtaLowerHours(), m.GetEtaUpperHours(), m.GetB10Hours(),
			interval, cell(cmp.Or(m.GetVerdict(), "-")), m.GetRecommendedIntervalHours())
	}
	return tw.Flush()
}

func (c *cli) maintenanceTrainCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "train MODEL",
		Short: "Train a model's failure predictor from its devices' run-to-failure histories",
		Long: `Train the remaining-useful-life model of a device model from the
run-to-failure trajectories its repairs stored: for a model whose plan sets
predict_failures, the server keeps each device's telemetry since its last
repair and stores it when a repair with a failure code is completed. At
least 5 are needed. The due list then shows devices predicted to fail within
its horizon, with the reason predicted_failure. Train again as failures
accumulate.`,
		Args: exactArgs(1, "one model id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := strings.TrimPrefix(args[0], "models/")
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				fm, err := client.TrainFailureModel(rctx, &medfleetv1.TrainFailureModelRequest{Model: "models/" + id})
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, fm)
				}
				return writeKeyValues(c.stdout, [][2]string{
					{"name", cell(fm.GetName())},
					{"trajectories", strconv.Itoa(int(fm.GetTrajectories()))},
					{"channels", cell(strings.Join(fm.GetChannels(), " "))},
					{"trained", rfc3339(fm.GetTrainTime())},
				})
			})
		},
	}
}
