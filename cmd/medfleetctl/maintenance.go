package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/medfleet/medfleet/maintenance/rul"
)

func (c *cli) maintenanceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maintenance",
		Short: "The due list, maintenance records, compliance, reliability and RUL models",
		Long: `Maintenance of the fleet's devices.

"maintenance due", "record", "report" and "reliability" ask the server.
"maintenance rul" develops and evaluates the remaining-useful-life model on
run-to-failure data in files: it works offline and never contacts the
server.`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(c.rulCommand())
	cmd.AddCommand(c.maintenanceProgramCommands()...)
	return cmd
}

func (c *cli) rulCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rul",
		Short: "Remaining-useful-life model: evaluate on a test set, cross-validate",
		Long: `The remaining-useful-life (RUL) model learns from run-to-failure histories
of multichannel telemetry: it keeps the channels that follow the remaining
life, derives trailing-window features and fits gradient-boosted regression
trees to the remaining life, capped at --cap (piecewise linear).

Input formats (--format):
  cmapss  NASA C-MAPSS text files: train_FD00x.txt, test_FD00x.txt and
          RUL_FD00x.txt (one true remaining life per test unit)

Exit codes: 0 success; 2 bad flags, or an input file that cannot be read or
parsed (the message names the flag and the line); 1 any other failure.`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(c.rulEvaluateCommand(), c.rulValidateCommand())
	return cmd
}

// rulFlags are the flags that every rul command has.
type rulFlags struct {
	format string
	train  string
	seed   uint64
	cap    float64
}

func (f *rulFlags) add(fl *pflag.FlagSet) {
	fl.StringVar(&f.format, "format", "cmapss", "format of the input files: cmapss")
	fl.StringVar(&f.train, "train", "", "run-to-failure histories to train on (required)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the random choices of training: the same seed gives the same model")
	fl.Float64Var(&f.cap, "cap", rul.DefaultConfig().Cap, "cap of the piecewise-linear target: the longest remaining life predicted")
}

// config checks the flags and returns the model's configuration.
func (f *rulFlags) config(cmd *cobra.Command) (rul.Config, error) {
	if f.format != "cmapss" {
		return rul.Config{}, usageErrorf(cmd, "--format: want cmapss, got %q", f.format)
	}
	if f.train == "" {
		return rul.Config{}, usageErrorf(cmd, "--train: required")
	}
	if !(f.cap > 0) || math.IsInf(f.cap, 0) {
		return rul.Config{}, usageErrorf(cmd, "--cap: must be positive, got %v", f.cap)
	}
	cfg := rul.DefaultConfig()
	cfg.Seed, cfg.Cap = f.seed, f.cap
	return cfg, nil
}

// readInput reads the file of a flag with read; an unreadable or malformed
// file is a usage error naming the flag.
func readInput[T any](cmd *cobra.Command, flag, path string, read func(*os.File) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, usageErrorf(cmd, "%s %q: %v", flag, path, unwrapPath(err))
	}
	defer f.Close()
	v, err := read(f)
	if err != nil {
		return zero, usageErrorf(cmd, "%s %q: %v", flag, path, err)
	}
	return v, nil
}

// readUnits reads the units of a flag's file, of which there must be at
// least one.
func readUnits(cmd *cobra.Command, flag, path string) ([]rul.Unit, error) {
	units, err := readInput(cmd, flag, path, func(f *os.File) ([]rul.Unit, error) { return rul.ReadCMAPSS(f) })
	if err == nil && len(units) == 0 {
		err = usageErrorf(cmd, "%s %q: no units", flag, path)
	}
	return units, err
}

func observations(units []rul.Unit) int {
	n := 0
	for _, u := range units {
		n += len(u.Observations)
	}
	return n
}

const rulEvaluateLong = `Train the RUL model on the run-to-failure units of --train, predict the
remaining life of each unit of --test after its last observation, and
score the predictions against --truth: the root mean square error, and
the PHM08 score, the sum over units of exp(-d/13)-1 for early predictions
(d < 0) and exp(d/10)-1 for late ones, d = predicted - true. Lower is
better for both.

It prints the number of units and observations trained on, the channels
kept, RMSE, PHM08 score and the time taken; with -o json, an object with
the same. --out writes one line per test unit, space separated: unit,
predicted remaining life, true remaining life. It does not replace an
existing file unless --force.`

func (c *cli) rulEvaluateCommand() *cobra.Command {
	var (
		f                rulFlags
		test, truth, out string
		force            bool
	)
	cmd := &cobra.Command{
		Use:   "evaluate --train FILE --test FILE --truth FILE [flags]",
		Short: "Train the RUL model and score its predictions on a test set",
		Long:  rulEvaluateLong,
		Example: `  medfleetctl maintenance rul evaluate --format cmapss \
    --train train_FD003.txt --test test_FD003.txt --truth RUL_FD003.txt --out pred.txt`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := c.now()
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			switch {
			case test == "":
				return usageErrorf(cmd, "--test: required")
			case truth == "":
				return usageErrorf(cmd, "--truth: required")
			case force && out == "":
				return usageErrorf(cmd, "--force: replaces the file of --out, which is not given")
			}
			train, err := readUnits(cmd, "--train", f.train)
			if err != nil {
				return err
			}
			tests, err := readUnits(cmd, "--test", test)
			if err != nil {
				return err
			}
			want, err := readInput(cmd, "--truth", truth, func(f *os.File) ([]float64, error) { return rul.ReadRUL(f) })
			if err != nil {
				return err
			}
			if len(want) != len(tests) {
				return usageErrorf(cmd, "--truth %q: %d values for the %d units of --test", truth, len(want), len(tests))
			}
			var outFile *outFile
			if out != "" {
				if outFile, err = createOutFile("--out", out, 0o644, force); err != nil {
					return err
				}
				defer outFile.abort()
			}

			m, err := rul.Train(cmd.Context(), train, cfg)
			if err != nil {
				return err
			}
			pred := make([]float64, len(tests))
			for i, u := range tests {
				if pred[i], err = m.Predict(u); err != nil {
					return fmt.Errorf("--test: %w", err)
				}
			}
			rmse, phm, err := rul.Evaluate(pred, want)
			if err != nil {
				return err
			}
			if outFile != nil {
				var b bytes.Buffer
				for i, u := range tests {
					fmt.Fprintf(&b, "%s %.2f %s\n", u.ID, pred[i], strconv.FormatFloat(want[i], 'f', -1, 64))
				}
				if err := outFile.commit(b.Bytes()); err != nil {
					return err
				}
			}
			res := rulEvaluation{
				TrainUnits:        len(train),
				TrainObservations: observations(train),
				Channels:          m.Channels(),
				ChannelsIn:        len(train[0].Channels),
				TestUnits:         len(tests),
				RMSE:              rmse,
				PHM08:             phm,
				Seed:              cfg.Seed,
				Cap:               cfg.Cap,
				Seconds:           c.now().Sub(start).Seconds(),
			}
			if c.flags.output == "json" {
				return writeJSONValue(c.stdout, res)
			}
			return writeKeyValues(c.stdout, res.table())
		},
	}
	fl := cmd.Flags()
	f.add(fl)
	fl.StringVar(&test, "test", "", "units to predict, their histories stopped before failure (required)")
	fl.StringVar(&truth, "truth", "", "true remaining life of each unit of --test, in order (required)")
	fl.StringVar(&out, "out", "", "write the predictions to this file")
	fl.BoolVar(&force, "force", false, "replace the file of --out if it exists")
	return cmd
}

// rulEvaluation is the result of "maintenance rul evaluate", as -o json
// writes it.
type rulEvaluation struct {
	TrainUnits        int      `json:"train_units"`
	TrainObservations int      `json:"train_observations"`
	Channels          []string `json:"channels"`    // kept
	ChannelsIn        int      `json:"channels_in"` // in the input
	TestUnits         int      `json:"test_units"`
	RMSE              float64  `json:"rmse"`
	PHM08             float64  `json:"phm08"`
	Seed              uint64   `json:"seed"`
	Cap               float64  `json:"cap"`
	Seconds           float64  `json:"seconds"`
}

func (r rulEvaluation) table() [][2]string {
	return [][2]string{
		{"trained on", fmt.Sprintf("%s, %s", countNoun(r.TrainUnits, "unit"), countNoun(r.TrainObservations, "observation"))},
		{"channels kept", fmt.Sprintf("%d of %d: %s", len(r.Channels), r.ChannelsIn, strings.Join(r.Channels, " "))},
		{"test units", strconv.Itoa(r.TestUnits)},
		{"RMSE", fmt.Sprintf("%.2f", r.RMSE)},
		{"PHM08 score", fmt.Sprintf("%.1f", r.PHM08)},
		{"seed", strconv.FormatUint(r.Seed, 10)},
		{"time", seconds(r.Seconds)},
	}
}

// seconds is a duration in seconds, to a tenth: "12.3s".
func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond).String()
}

const rulValidateLong = `Cross-validate the RUL model on run-to-failure units, without a test set,
to choose its configuration: split the units of --train into --folds folds,
by unit; train on all folds but one and predict the held-out units, each cut
at --cuts random points before its failure (between 1 and 1.2 x --cap
observations before, leaving at least 30), for each fold in turn.

It prints the RMSE and the PHM08 score per 100 predictions, comparable with
the score of a 100-unit test set; with -o json, an object with the same.
--seed draws the folds and the cuts as well as the model's random choices.`

func (c *cli) rulValidateCommand() *cobra.Command {
	var (
		f     rulFlags
		folds int
		cuts  int
	)
	cmd := &cobra.Command{
		Use:     "validate --train FILE [flags]",
		Short:   "Cross-validate the RUL model on run-to-failure units",
		Long:    rulValidateLong,
		Example: `  medfleetctl maintenance rul validate --format cmapss --train train_FD003.txt --folds 3`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := c.now()
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			if folds < 2 {
				return usageErrorf(cmd, "--folds: must be at least 2, got %d", folds)
			}
			if cuts < 1 {
				return usageErrorf(cmd, "--cuts: must be positive, got %d", cuts)
			}
			train, err := readUnits(cmd, "--train", f.train)
			if err != nil {
				return err
			}
			if folds > len(train) {
				return usageErrorf(cmd, "--folds: %d folds of %s", folds, countNoun(len(train), "unit"))
			}
			v, err := rul.CrossValidate(cmd.Context(), train, cfg, folds, cuts)
			if err != nil {
				return err
			}
			res := rulValidation{Validation: v, Folds: folds, Seed: cfg.Seed, Cap: cfg.Cap, Seconds: c.now().Sub(start).Seconds()}
			if c.flags.output == "json" {
				return writeJSONValue(c.stdout, res)
			}
			return writeKeyValues(c.stdout, [][2]string{
				{"held out", fmt.Sprintf("%s in %d folds, %s", countNoun(v.Units, "unit"), folds, countNoun(v.Predictions, "prediction"))},
				{"RMSE", fmt.Sprintf("%.2f", v.RMSE)},
				{"PHM08 score per 100", fmt.Sprintf("%.1f", v.PHM08)},
				{"seed", strconv.FormatUint(cfg.Seed, 10)},
				{"time", seconds(res.Seconds)},
			})
		},
	}
	fl := cmd.Flags()
	f.add(fl)
	fl.IntVar(&folds, "folds", 3, "number of folds")
	fl.IntVar(&cuts, "cuts", 30, "number of histories cut from each held-out unit")
	return cmd
}

// rulValidation is the result of "maintenance rul validate", as -o json
// writes it.
type rulValidation struct {
	rul.Validation
	Folds   int     `json:"folds"`
	Seed    uint64  `json:"seed"`
	Cap     float64 `json:"cap"`
	Seconds float64 `json:"seconds"`
}
