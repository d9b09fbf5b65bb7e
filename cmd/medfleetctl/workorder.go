package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// workOrdersPrefix is the collection part of a work order's resource name.
const workOrdersPrefix = "workOrders/"

// workOrderIDPattern admits the ids the server makes ("20260301-k3x9q2ab")
// and refuses what could not be one: a path, spaces, control characters.
var workOrderIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// parseWorkOrderID accepts a bare id ("20260301-k3x9q2ab") or a resource
// name ("workOrders/20260301-k3x9q2ab") and returns the id.
func parseWorkOrderID(arg string) (string, error) {
	id := strings.TrimPrefix(arg, workOrdersPrefix)
	if !workOrderIDPattern.MatchString(id) {
		return "", fmt.Errorf("work order id %q: want an id such as 20260301-k3x9q2ab, or workOrders/{id}", arg)
	}
	return id, nil
}

// workOrderTypes maps --type to the API's types.
var workOrderTypes = map[string]medfleetv1.WorkOrderType{
	"preventive": medfleetv1.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE,
	"repair":     medfleetv1.WorkOrderType_WORK_ORDER_TYPE_REPAIR,
	"acceptance": medfleetv1.WorkOrderType_WORK_ORDER_TYPE_ACCEPTANCE,
}

// workOrderStates maps --state to the API's states.
var workOrderStates = map[string]medfleetv1.WorkOrderState{
	"open":      medfleetv1.WorkOrderState_WORK_ORDER_STATE_OPEN,
	"assigned":  medfleetv1.WorkOrderState_WORK_ORDER_STATE_ASSIGNED,
	"completed": medfleetv1.WorkOrderState_WORK_ORDER_STATE_COMPLETED,
	"cancelled": medfleetv1.WorkOrderState_WORK_ORDER_STATE_CANCELLED,
}

// enumWord is an enum value as the flags spell it: "WORK_ORDER_STATE_OPEN"
// with prefix "WORK_ORDER_STATE_" -> "open"; "-" when unspecified.
func enumWord(name, prefix string) string {
	w := strings.ToLower(strings.TrimPrefix(name, prefix))
	if w == "unspecified" {
		return "-"
	}
	return w
}

func workOrderTypeWord(t medfleetv1.WorkOrderType) string {
	return enumWord(t.String(), "WORK_ORDER_TYPE_")
}

func workOrderStateWord(s medfleetv1.WorkOrderState) string {
	return enumWord(s.String(), "WORK_ORDER_STATE_")
}

func dueReasonWord(r medfleetv1.DueReason) string {
	return enumWord(r.String(), "DUE_REASON_")
}

// Dates and times of the flags. A date is a UTC day, as the tables print
// dates; what it stands for depends on the flag (its start, its end).
const (
	dateLayout = "2006-01-02"
	oneDay     = 24 * time.Hour
)

// parseWhen parses a flag's value: a date (2026-03-31), which dateMeans
// turns into a time, or an RFC 3339 time, taken as it is.
func parseWhen(flag, s string, dateMeans func(day time.Time) time.Time) (time.Time, error) {
	if d, err := time.Parse(dateLayout, s); err == nil {
		return dateMeans(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s: want a date (2026-03-31) or an RFC 3339 time (2026-03-31T14:00:00Z), got %q", flag, s)
}

// startOfDay, endOfDay and nextDay are the dateMeans of parseWhen.
func startOfDay(d time.Time) time.Time { return d }
func endOfDay(d time.Time) time.Time   { return d.Add(oneDay - time.Second) }
func nextDay(d time.Time) time.Time    { return d.Add(oneDay) }

// dateOf is the UTC date of a timestamp, "-" when unset.
func dateOf(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(dateLayout)
}

func (c *cli) workorderCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "workorder",
		Aliases: []string{"workorders", "wo"},
		Short:   "Create, list, assign, complete and cancel maintenance work orders",
		Long: `Work orders are the maintenance work on one device:
  preventive  tasks of the device's plan; the scheduler opens them as the
              tasks fall due, and they may be opened ahead of it
  repair      after a failure; completing one records the failure (a major
              one sends the device back to needs_check)
  acceptance  the check before a device enters, or returns to, service

An order is open, then assigned, then completed or cancelled. Each task of a
device has at most one open order.

Orders are named by their id, as in "20260301-k3x9q2ab", or by their
resource name, as in "workOrders/20260301-k3x9q2ab".`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(
		c.workorderCreateCommand(),
		c.workorderGetCommand(),
		c.workorderListCommand(),
		c.workorderAssignCommand(),
		c.workorderCompleteCommand(),
		c.workorderCancelCommand(),
	)
	return cmd
}

// printWorkOrder writes an order in the chosen output format.
func (c *cli) printWorkOrder(o *medfleetv1.WorkOrder) error {
	if c.flags.output == "json" {
		return writeJSON(c.stdout, o)
	}
	return writeWorkOrder(c.stdout, o, c.now())
}

func (c *cli) workorderCreateCommand() *cobra.Command {
	var (
		typ, due, failureCode, assignee, description string
		tasks                                        []string
		major                                        bool
	)
	cmd := &cobra.Command{
		Use:   "create DEVICE --type preventive|repair|acceptance [flags]",
		Short: "Open a work order",
		Long: `Open a work order on a device. A preventive order names the tasks of the
device's plan it covers (--task, repeatable); a repair may carry the failure
code now or when it is completed, and --major when the device must pass an
acceptance check again before use.

--due is when the work must be done, by default now. A date means the end
of that (UTC) day. A manual order's due window ends at its due time: a
preventive order completed after it counts as late in "maintenance report".`,
		Example: `  medfleetctl workorder create pump-0001 --type acceptance --assignee alice
  medfleetctl workorder create pump-0001 --type preventive --task pm --task esa --due 2026-03-31
  medfleetctl workorder create pump-0001 --type repair --failure-code occlusion-sensor --major`,
		Args: exactArgs(1, "one device id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeviceID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if typ == "" {
				return usageErrorf(cmd, "--type: required, one of preventive, repair, acceptance")
			}
			t, ok := workOrderTypes[typ]
			if !ok {
				return usageErrorf(cmd, "--type: want preventive, repair or acceptance, got %q", typ)
			}
			switch {
			case t == medfleetv1.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE && len(tasks) == 0:
				return usageErrorf(cmd, "--task: required for a preventive order, the plan's task ids")
			case t != medfleetv1.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE && len(tasks) > 0:
				return usageErrorf(cmd, "--task: only for a preventive order")
			case t != medfleetv1.WorkOrderType_WORK_ORDER_TYPE_REPAIR && failureCode != "":
				return usageErrorf(cmd, "--failure-code: only for a repair")
			case t != medfleetv1.WorkOrderType_WORK_ORDER_TYPE_REPAIR && major:
				return usageErrorf(cmd, "--major: only for a repair")
			}
			o := &medfleetv1.WorkOrder{
				Device:      devicesPrefix + id,
				Type:        t,
				TaskIds:     tasks,
				Description: description,
				FailureCode: failureCode,
				Major:       major,
				Assignee:    assignee,
			}
			if due != "" {
				dt, err := parseWhen("--due", due, endOfDay)
				if err != nil {
					return usageError{cmd: cmd.CommandPath(), err: err}
				}
				o.DueTime = timestamppb.New(dt)
			}
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				created, err := client.CreateWorkOrder(rctx, &medfleetv1.CreateWorkOrderRequest{WorkOrder: o})
				if err != nil {
					return err
				}
				return c.printWorkOrder(created)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&typ, "type", "", "preventive, repair or acceptance")
	fl.StringArrayVar(&tasks, "task", nil, "a task `id` of the plan (preventive; repeatable)")
	fl.StringVar(&due, "due", "", "due date or time (default: now)")
	fl.StringVar(&failureCode, "failure-code", "", "the failure, e.g. occlusion-sensor (repair)")
	fl.BoolVar(&major, "major", false, "the repair needs an acceptance check before use")
	fl.StringVar(&assignee, "assignee", "", "assign the order at once to this technician")
	fl.StringVar(&description, "description", "", "what is to be done, or what failed")
	return cmd
}

func (c *cli) workorderGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a work order",
		Args:  exactArgs(1, "one work order id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseWorkOrderID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				o, err := client.GetWorkOrder(rctx, &medfleetv1.GetWorkOrderRequest{Name: workOrdersPrefix + id})
				if err != nil {
					return err
				}
				return c.printWorkOrder(o)
			})
		},
	}
}

func (c *cli) workorderListCommand() *cobra.Command {
	var device, state string
	cmd := &cobra.Command{
		Use:   "list [--device D] [--state S]",
		Short: "List work orders, newest first",
		Long: `List work orders, newest first, of every device or of one (--device), in
every state or in one (--state open, assigned, completed or cancelled). The
DUE column marks a preventive order still open after its due window as
overdue. With -o json the output is one ListWorkOrdersResponse holding them
all.`,
		Example: `  medfleetctl workorder list --state open
  medfleetctl workorder list --device pump-0001 -o json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &medfleetv1.ListWorkOrdersRequest{}
			if device != "" {
				id, err := parseDeviceID(device)
				if err != nil {
					return usageErrorf(cmd, "--device: %v", err)
				}
				req.Device = devicesPrefix + id
			}
			if state != "" {
				s, ok := workOrderStates[state]
				if !ok {
					return usageErrorf(cmd, "--state: want open, assigned, completed or cancelled, got %q", state)
				}
				req.State = s
			}
			var orders []*medfleetv1.WorkOrder
			err := c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				var err error
				orders, err = allPages(cmd.Context(), c, "list work orders", func(ctx context.Context, token string) ([]*medfleetv1.WorkOrder, string, error) {
					req.PageToken = token
					resp, err := client.ListWorkOrders(ctx, req)
					return resp.GetWorkOrders(), resp.GetNextPageToken(), err
				})
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, &medfleetv1.ListWorkOrdersResponse{WorkOrders: orders})
			}
			return writeWorkOrderTable(c.stdout, orders, c.now())
		},
	}
	cmd.Flags().StringVar(&device, "device", "", "only the orders of this device")
	cmd.Flags().StringVar(&state, "state", "", "only orders in this state: open, assigned, completed or cancelled")
	return cmd
}

func (c *cli) workorderAssignCommand() *cobra.Command {
	var etag string
	cmd := &cobra.Command{
		Use:   "assign ID ASSIGNEE",
		Short: "Give an open work order to a technician",
		Long: `Give an open or assigned work order to a technician; an assigned order can
be given to another one.`,
		Example: `  medfleetctl workorder assign 20260301-k3x9q2ab alice`,
		Args:    exactArgs(2, "a work order id and an assignee"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseWorkOrderID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if strings.TrimSpace(args[1]) == "" {
				return usageErrorf(cmd, "%swant an assignee, got %q", subPath(cmd), args[1])
			}
			req := &medfleetv1.AssignWorkOrderRequest{Name: workOrdersPrefix + id, Assignee: args[1], Etag: etag}
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				o, err := client.AssignWorkOrder(rctx, req)
				if err != nil {
					return err
				}
				return c.printWorkOrder(o)
			})
		},
	}
	cmd.Flags().StringVar(&etag, "etag", "", "assign only if the order still has this etag")
	return cmd
}

const workorderCompleteLong = `Record the work as done, and what came of it.

--pass and --fail give the result of each task (repeatable); for an
acceptance order the task is "acceptance". A preventive order resets the
clocks of its tasks; a failed task takes the device out of service. An
acceptance order puts the device in service unless a result failed, which
takes it out. A repair records a failure under its failure code, which
--failure-code gives if the order has none yet.

--at is when the work was done, by default now; a date means the start of
that (UTC) day. It cannot be in the future.`

func (c *cli) workorderCompleteCommand() *cobra.Command {
	var (
		pass, fail, parts []string
		failureCode, at   string
		minutes           int32
		etag              string
	)
	cmd := &cobra.Command{
		Use:   "complete ID [--pass TASK]... [--fail TASK]... [flags]",
		Short: "Complete a work order with its results",
		Long:  workorderCompleteLong,
		Example: `  medfleetctl workorder complete 20260301-k3x9q2ab --pass acceptance
  medfleetctl workorder complete 20260301-p0q1r2s3 --pass pm --fail esa --minutes 50
  medfleetctl workorder complete 20260302-a1b2c3d4 --failure-code occlusion-sensor --part "pressure sensor 1000SP01234"`,
		Args: exactArgs(1, "one work order id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseWorkOrderID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			results, err := taskResults(pass, fail)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if minutes < 0 {
				return usageErrorf(cmd, "--minutes: must not be negative, got %d", minutes)
			}
			req := &medfleetv1.CompleteWorkOrderRequest{
				Name:         workOrdersPrefix + id,
				Results:      results,
				Parts:        parts,
				FailureCode:  failureCode,
				MinutesSpent: minutes,
				Etag:         etag,
			}
			if at != "" {
				t, err := parseWhen("--at", at, startOfDay)
				if err != nil {
					return usageError{cmd: cmd.CommandPath(), err: err}
				}
				req.CompleteTime = timestamppb.New(t)
			}
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				o, err := client.CompleteWorkOrder(rctx, req)
				if err != nil {
					return err
				}
				return c.printWorkOrder(o)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&pass, "pass", nil, "the `task` passed (repeatable)")
	fl.StringArrayVar(&fail, "fail", nil, "the `task` failed (repeatable)")
	fl.StringArrayVar(&parts, "part", nil, "a `part` used (repeatable)")
	fl.StringVar(&failureCode, "failure-code", "", "the failure a repair found")
	fl.Int32Var(&minutes, "minutes", 0, "minutes spent")
	fl.StringVar(&at, "at", "", "when the work was done (default: now)")
	fl.StringVar(&etag, "etag", "", "complete only if the order still has this etag")
	return cmd
}

// taskResults turns --pass and --fail into results, in the order given,
// refusing an empty task id and a task given twice.
func taskResults(pass, fail []string) ([]*medfleetv1.TaskResult, error) {
	var out []*medfleetv1.TaskResult
	seen := map[string]string{}
	add := func(flag string, ids []string, passed bool) error {
		for _, id := range ids {
			if id == "" {
				return fmt.Errorf("%s: want a task id, got \"\"", flag)
			}
			if prev, dup := seen[id]; dup {
				return fmt.Errorf("task %q: given twice (%s and %s)", id, prev, flag)
			}
			seen[id] = flag
			out = append(out, &medfleetv1.TaskResult{TaskId: id, Passed: passed})
		}
		return nil
	}
	if err := add("--pass", pass, true); err != nil {
		return nil, err
	}
	if err := add("--fail", fail, false); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *cli) workorderCancelCommand() *cobra.Command {
	var reason, etag string
	cmd := &cobra.Command{
		Use:   "cancel ID --reason R",
		Short: "Cancel an open work order, saying why",
		Long: `Cancel an open or assigned work order without doing the work. The reason is
required: a cancelled order leaves a gap in the maintenance record, and the
cancellation is audited with it. Cancelled orders do not count in
"maintenance report".`,
		Example: `  medfleetctl workorder cancel 20260301-k3x9q2ab --reason "device returned to the vendor"`,
		Args:    exactArgs(1, "one work order id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseWorkOrderID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if strings.TrimSpace(reason) == "" {
				return usageErrorf(cmd, "--reason: required, why the work is not done")
			}
			req := &medfleetv1.CancelWorkOrderRequest{Name: workOrdersPrefix + id, Reason: reason, Etag: etag}
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				o, err := client.CancelWorkOrder(rctx, req)
				if err != nil {
					return err
				}
				return c.printWorkOrder(o)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the work is not done")
	cmd.Flags().StringVar(&etag, "etag", "", "cancel only if the order still has this etag")
	return cmd
}

// isOpenOrder is an order not yet completed or cancelled.
func isOpenOrder(o *medfleetv1.WorkOrder) bool {
	s := o.GetState()
	return s == medfleetv1.WorkOrderState_WORK_ORDER_STATE_OPEN || s == medfleetv1.WorkOrderState_WORK_ORDER_STATE_ASSIGNED
}

// isScheduledOrder is a preventive order: the kind whose timeliness the
// compliance report counts. Manual repairs and acceptance checks are due
// when opened ("now" unless --due) and are never called overdue or late.
func isScheduledOrder(o *medfleetv1.WorkOrder) bool {
	return o.GetType() == medfleetv1.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE
}

// orderDue is the DUE cell of an order: its due date, and for an open one
// how far off it is ("in 3d"; "5d overdue" for a preventive order after its
// window).
func orderDue(o *medfleetv1.WorkOrder, now time.Time) string {
	if o.GetDueTime() == nil {
		return "-"
	}
	if !isOpenOrder(o) {
		return dateOf(o.GetDueTime())
	}
	overdue := isScheduledOrder(o) && o.GetWindowEndTime() != nil && now.After(o.GetWindowEndTime().AsTime())
	return dueCell(o.GetDueTime(), now, overdue)
}

// orderTasks are the tasks of an order as a cell: "pm, esa", or for an
// acceptance order "acceptance".
func orderTasks(o *medfleetv1.WorkOrder) string {
	if len(o.GetTaskIds()) == 0 {
		if o.GetType() == medfleetv1.WorkOrderType_WORK_ORDER_TYPE_ACCEPTANCE {
			return "acceptance"
		}
		return "-"
	}
	ids := make([]string, len(o.GetTaskIds()))
	for i, id := range o.GetTaskIds() {
		ids[i] = cell(id)
	}
	return strings.Join(ids, ",")
}

// writeWorkOrderTable writes orders as a table with a count.
func writeWorkOrderTable(w io.Writer, orders []*medfleetv1.WorkOrder, now time.Time) error {
	if len(orders) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tDEVICE\tTYPE\tSTATE\tTASKS\tRISK\tDUE\tASSIGNEE")
		for _, o := range orders {
			fmt.Fprintln(tw, strings.Join([]string{
				cell(strings.TrimPrefix(o.GetName(), workOrdersPrefix)),
				cell(deviceID(o.GetDevice())),
				workOrderTypeWord(o.GetType()),
				workOrderStateWord(o.GetState()),
				orderTasks(o),
				riskWord(o.GetHighRisk(), o.GetLifeSupport()),
				orderDue(o, now),
				cell(o.GetAssignee()),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, countNoun(len(orders), "work order"))
	return err
}

// writeWorkOrder writes an order as "key: value" lines: what it is, then
// what came of it once completed or cancelled.
func writeWorkOrder(w io.Writer, o *medfleetv1.WorkOrder, now time.Time) error {
	by := func(t *timestamppb.Timestamp, who string) string {
		s := timeAndAge(t, now, "-")
		if who != "" {
			s += " by " + cell(who)
		}
		return s
	}
	kvs := [][2]string{
		{"name", cell(o.GetName())},
		{"device", cell(o.GetDevice())},
		{"type", workOrderTypeWord(o.GetType())},
		{"state", workOrderStateWord(o.GetState())},
		{"tasks", orderTasks(o)},
		{"reason", dueReasonWord(o.GetReason())},
		{"description", cell(oneLine(o.GetDescription()))},
		{"risk", riskWord(o.GetHighRisk(), o.GetLifeSupport())},
		{"created", by(o.GetCreateTime(), o.GetCreator())},
		{"due", orderDue(o, now)},
		{"window end", timeAndAge(o.GetWindowEndTime(), now, "-")},
		{"assignee", cell(o.GetAssignee())},
	}
	if o.GetType() == medfleetv1.WorkOrderType_WORK_ORDER_TYPE_REPAIR {
		kvs = append(kvs,
			[2]string{"failure code", cell(o.GetFailureCode())},
			[2]string{"major", yesNo(o.GetMajor())})
	}
	switch o.GetState() {
	case medfleetv1.WorkOrderState_WORK_ORDER_STATE_COMPLETED:
		completed := by(o.GetCompleteTime(), o.GetCompletedBy())
		if we := o.GetWindowEndTime(); isScheduledOrder(o) && we != nil {
			if o.GetCompleteTime().AsTime().After(we.AsTime()) {
				completed += ", late"
			} else {
				completed += ", on time"
			}
		}
		kvs = append(kvs,
			[2]string{"completed", completed},
			[2]string{"results", resultsCell(o.GetResults())},
			[2]string{"parts", cell(strings.Join(o.GetParts(), ", "))},
			[2]string{"minutes", strconv.Itoa(int(o.GetMinutesSpent()))},
			[2]string{"usage then", strconv.FormatFloat(o.GetUsageHoursAtCompletion(), 'f', 1, 64) + " h"})
	case medfleetv1.WorkOrderState_WORK_ORDER_STATE_CANCELLED:
		kvs = append(kvs, [2]string{"cancelled", cell(o.GetCancelReason())})
	}
	kvs = append(kvs, [2]string{"etag", cell(o.GetEtag())})
	return writeKeyValues(w, kvs)
}

// resultsCell is "pm passed, esa failed (leakage 620 uA)"; "-" without
// results.
func resultsCell(results []*medfleetv1.TaskResult) string {
	if len(results) == 0 {
		return "-"
	}
	parts := make([]string, len(results))
	for i, r := range results {
		s := cell(r.GetTaskId()) + " failed"
		if r.GetPassed() {
			s = cell(r.GetTaskId()) + " passed"
		}
		if n := oneLine(r.GetNote()); n != "" {
			s += " (" + cell(n) + ")"
		}
		parts[i] = s
	}
	return strings.Join(parts, ", ")
}
