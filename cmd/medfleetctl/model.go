package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"gopkg.in/yaml.v3"

	"github.com/medfleet/medfleet/maintenance"
	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// modelsPrefix is the collection part of a device model's resource name.
const modelsPrefix = "models/"

// modelIDPattern is the model id as package maintenance checks it.
var modelIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// parseModelID accepts a bare model id ("bd-alaris-8100") or a resource
// name ("models/bd-alaris-8100") and returns the id.
func parseModelID(arg string) (string, error) {
	id := strings.TrimPrefix(arg, modelsPrefix)
	if !modelIDPattern.MatchString(id) {
		return "", fmt.Errorf("model id %q: want 1 to 64 characters of [a-z0-9._-], starting with a letter or digit", arg)
	}
	return id, nil
}

// withMaintenanceService dials the server, runs fn and closes the
// connection. The model, workorder and maintenance nouns share it.
func (c *cli) withMaintenanceService(ctx context.Context, fn func(medfleetv1.MaintenanceServiceClient) error) error {
	return c.withConn(ctx, func(conn *grpc.ClientConn) error {
		return fn(medfleetv1.NewMaintenanceServiceClient(conn))
	})
}

func (c *cli) modelCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "model",
		Aliases: []string{"models"},
		Short:   "Apply, show and list device models and their maintenance plans",
		Long: `The maintenance catalogue: device models, their risk class, and the plan of
maintenance tasks each one follows. A device belongs to the model whose
model string it reports ("device create --model", or at registration).

Models are named by their id, as in "bd-alaris-8100", or by their resource
name, as in "models/bd-alaris-8100".`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(c.modelApplyCommand(), c.modelGetCommand(), c.modelListCommand())
	return cmd
}

// printModel writes a model in the chosen output format.
func (c *cli) printModel(m *medfleetv1.DeviceModel) error {
	if c.flags.output == "json" {
		return writeJSON(c.stdout, m)
	}
	return writeModel(c.stdout, m, c.now())
}

const modelApplyLong = `Create or replace a device model and its maintenance plan from a YAML file
(see examples/models/): the id, the model string devices report, the risk
class, and the tasks with their triggers and due windows.

The file is checked here first, as the server checks it: an unknown key, a
value of the wrong type or a plan that cannot work (a task without any
trigger, a due window longer than the interval...) is a usage error (exit
code 2) naming the file, the line and the field, and nothing is sent.
--dry-run stops there and prints the model as it would be applied.

Applying replaces the whole model: tasks left out of the file are removed
from the plan. Devices keep their maintenance record.`

func (c *cli) modelApplyCommand() *cobra.Command {
	var (
		file   string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or replace a model and its plan from a YAML file",
		Long:  modelApplyLong,
		Example: `  medfleetctl model apply -f examples/models/infusion-pump.yaml
  medfleetctl model apply -f plan.yaml --dry-run`,
		Args: exactArgs(0, "no arguments (the file is given by -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf(cmd, "-f: required, the model file")
			}
			id, m, err := readModelFile(file)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if dryRun {
				m.Name = modelsPrefix + id
				return c.printModel(m)
			}
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				applied, err := client.ApplyDeviceModel(rctx, &medfleetv1.ApplyDeviceModelRequest{ModelId: id, DeviceModel: m})
				if err != nil {
					return err
				}
				return c.printModel(applied)
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the model file, YAML")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check the file and print the model; send nothing")
	return cmd
}

// readModelFile reads and checks a model file. Its errors name the file,
// and the line and the field when the parser knows them.
func readModelFile(path string) (string, *medfleetv1.DeviceModel, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("-f %q: %w", path, unwrapPath(err))
	}
	id, m, err := maintenance.ParseModelYAML(data)
	if err != nil {
		return "", nil, modelFileError(path, data, err)
	}
	return id, m, nil
}

// yamlLine is how yaml.v3 starts the message of an error at a line.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlUnknownField is yaml.v3's message for a key the plan does not have.
var yamlUnknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

// modelFileError rewrites a parse error as "FILE: line N: FIELD: reason",
// one line per problem. A *maintenance.FieldError has all three; yaml.v3's
// errors have the line only, and the field is found at that line.
func modelFileError(path string, data []byte, err error) error {
	var fe *maintenance.FieldError
	if errors.As(err, &fe) {
		if fe.Line > 0 {
			return fmt.Errorf("%s: line %d: %s: %s", path, fe.Line, fe.Field, fe.Reason)
		}
		return fmt.Errorf("%s: %s: %s", path, fe.Field, fe.Reason)
	}
	var msgs []string
	var te *yaml.TypeError
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%s: the file is empty", path)
	case errors.As(err, &te):
		msgs = te.Errors
	default:
		msgs = []string{strings.TrimPrefix(err.Error(), "model file: ")}
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // a syntax error leaves no tree: no field then
	lines := make([]string, len(msgs))
	for i, msg := range msgs {
		sub := yamlLine.FindStringSubmatch(msg)
		if sub == nil {
			lines[i] = path + ": " + msg
			continue
		}
		n, _ := strconv.Atoi(sub[1])
		reason := sub[2]
		if u := yamlUnknownField.FindStringSubmatch(reason); u != nil {
			reason = "unknown key " + strconv.Quote(u[1])
		}
		if field := yamlFieldAt(&root, n); field != "" {
			reason = field + ": " + reason
		}
		lines[i] = fmt.Sprintf("%s: line %d: %s", path, n, reason)
	}
	return errors.New(strings.Join(lines, "\n"))
}

// yamlFieldAt is the path ("tasks[1].interval_days") of the deepest key
// on line n of a YAML document, or "" when no key is on it.
func yamlFieldAt(root *yaml.Node, n int) string {
	var walk func(node *yaml.Node, path string) string
	walk = func(node *yaml.Node, path string) string {
		found := ""
		switch node.Kind {
		case yaml.DocumentNode:
			for _, c := range node.Content {
				if f := walk(c, path); f != "" {
					found = f
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(node.Content); i += 2 {
				key, val := node.Content[i], node.Content[i+1]
				p := key.Value
				if path != "" {
					p = path + "." + key.Value
				}
				if key.Line == n && found == "" {
					found = p
				}
				if f := walk(val, p); f != "" {
					found = f
				}
			}
		case yaml.SequenceNode:
			for i, c := range node.Content {
				if f := walk(c, fmt.Sprintf("%s[%d]", path, i)); f != "" {
					found = f
				}
			}
		}
		return found
	}
	return walk(root, "")
}

func (c *cli) modelGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a model and its plan, with each task's triggers in words",
		Args:  exactArgs(1, "one model id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseModelID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				m, err := client.GetDeviceModel(rctx, &medfleetv1.GetDeviceModelRequest{Name: modelsPrefix + id})
				if err != nil {
					return err
				}
				return c.printModel(m)
			})
		},
	}
}

func (c *cli) modelListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the models in the catalogue",
		Long: `List every model in the catalogue, ordered by id. With -o json the output
is one ListDeviceModelsResponse holding them all.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var models []*medfleetv1.DeviceModel
			err := c.withMaintenanceService(cmd.Context(), func(client medfleetv1.MaintenanceServiceClient) error {
				var err error
				models, err = allPages(cmd.Context(), c, "list models", func(ctx context.Context, token string) ([]*medfleetv1.DeviceModel, string, error) {
					resp, err := client.ListDeviceModels(ctx, &medfleetv1.ListDeviceModelsRequest{PageToken: token})
					return resp.GetDeviceModels(), resp.GetNextPageToken(), err
				})
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, &medfleetv1.ListDeviceModelsResponse{DeviceModels: models})
			}
			return writeModelTable(c.stdout, models)
		},
	}
}

// writeModelTable writes models as a table with a count.
func writeModelTable(w io.Writer, models []*medfleetv1.DeviceModel) error {
	if len(models) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tMODEL\tPROFILE\tEM\tHIGH RISK\tLIFE SUPPORT\tTASKS")
		for _, m := range models {
			fmt.Fprintln(tw, strings.Join([]string{
				cell(strings.TrimPrefix(m.GetName(), modelsPrefix)),
				cell(m.GetModel()),
				cell(m.GetProfile()),
				emNumber(m.GetEmNumber()),
				yesNo(m.GetHighRisk()),
				yesNo(m.GetLifeSupport()),
				strconv.Itoa(len(m.GetTasks())),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, countNoun(len(models), "model"))
	return err
}

// writeModel writes a model as "key: value" lines, then each task of its
// plan: kind, triggers in words, description.
func writeModel(w io.Writer, m *medfleetv1.DeviceModel, now time.Time) error {
	if err := writeKeyValues(w, [][2]string{
		{"name", cell(m.GetName())},
		{"model", cell(m.GetModel())},
		{"manufacturer", cell(m.GetManufacturer())},
		{"profile", cell(m.GetProfile())},
		{"em number", emNumber(m.GetEmNumber())},
		{"risk", riskWord(m.GetHighRisk(), m.GetLifeSupport())},
		{"aem allowed", yesNo(m.GetAemAllowed())},
		{"updated", timeAndAge(m.GetUpdateTime(), now, "-")},
		{"etag", cell(m.GetEtag())},
	}); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s:\n", countNoun(len(m.GetTasks()), "task"))
	for _, t := range m.GetTasks() {
		fmt.Fprintf(&b, "  %s (%s)\n", cell(t.GetId()), cell(maintenance.KindName(t.GetKind())))
		fmt.Fprintf(&b, "    due:  %s\n", taskTriggers(t))
		if d := oneLine(t.GetDescription()); d != "" {
			fmt.Fprintf(&b, "    what: %s\n", cell(d))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// taskTriggers says when a task falls due, in words: "every 365 d or
// 2000 h, or telemetry/filter/hours >= 250 (trend 7 d); window -30/+30 d".
func taskTriggers(t *medfleetv1.MaintenanceTask) string {
	var every []string
	if n := t.GetIntervalDays(); n > 0 {
		every = append(every, fmt.Sprintf("%d d", n))
	}
	if h := t.GetIntervalHours(); h > 0 {
		every = append(every, number(h)+" h")
	}
	var s string
	if len(every) > 0 {
		s = "every " + strings.Join(every, " or ")
	}
	for _, c := range t.GetConditions() {
		cond := cell(c.GetIndicator()) + " " + cell(c.GetOp()) + " " + number(c.GetThreshold())
		if c.GetTrendDays() > 0 {
			cond += fmt.Sprintf(" (trend %d d)", c.GetTrendDays())
		}
		if s == "" {
			s = "when " + cond
		} else {
			s += ", or " + cond
		}
	}
	if s == "" {
		s = "-"
	}
	switch before, after := t.GetWindowBeforeDays(), t.GetWindowAfterDays(); {
	case before != 0 && after != 0:
		s += fmt.Sprintf("; window -%d/+%d d", before, after)
	case before != 0:
		s += fmt.Sprintf("; window -%d d", before)
	case after != 0:
		s += fmt.Sprintf("; window +%d d", after)
	}
	return s
}

// oneLine folds the lines and runs of spaces of a text into single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// emNumber is the equipment-management number, "-" when unset.
func emNumber(n int32) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(int(n))
}

// riskWord is "life-support", "high" or "-".
func riskWord(highRisk, lifeSupport bool) string {
	switch {
	case lifeSupport:
		return "life-support"
	case highRisk:
		return "high"
	default:
		return "-"
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
