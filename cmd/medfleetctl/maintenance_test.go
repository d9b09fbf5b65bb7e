package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The rul_*.txt files of testdata are a tiny synthetic fleet in the
// C-MAPSS format: 8 run-to-failure units of 45 to 80 cycles in which s2,
// s3, s7 and s11 follow a wear that grows as the square of the age, the
// settings are noise and the other sensors constant; 3 test units cut
// before failure, and their true remaining lives.
var rulFiles = []string{
	"--train", filepath.Join("testdata", "rul_train.txt"),
	"--test", filepath.Join("testdata", "rul_test.txt"),
	"--truth", filepath.Join("testdata", "rul_truth.txt"),
}

// offline is the environment of the offline commands: a server that
// nobody listens on, so that a command that dialled would fail.
var offline = map[string]string{envServer: unreachable, envInsecure: "1"}

func TestMaintenanceRULEvaluate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pred.txt")
	code, stdout, stderr := runCLI(t, offline, append([]string{"maintenance", "rul", "evaluate", "--format", "cmapss", "--out", out}, rulFiles...)...)
	if code != exitOK {
		t.Fatalf("rul evaluate = %d, want 0; stderr:\n%s", code, stderr)
	}
	kv := map[string]string{}
	for line := range strings.Lines(stdout) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("rul evaluate: line %q is not key: value", line)
		}
		kv[k] = strings.TrimSpace(v)
	}
	want := map[string]string{
		"trained on": "8 units, 498 observations",
		"test units": "3",
		"seed":       "0",
	}
	for k, w := range want {
		if kv[k] != w {
			t.Errorf("rul evaluate %s: %q, want %q", k, kv[k], w)
		}
	}
	// The four sensors that wear; not the settings, nor the constants.
	if got := kv["channels kept"]; got != "4 of 24: s2 s3 s7 s11" {
		t.Errorf("rul evaluate channels kept: %q, want 4 of 24: s2 s3 s7 s11", got)
	}
	for _, k := range []string{"RMSE", "PHM08 score"} {
		if v, err := strconv.ParseFloat(kv[k], 64); err != nil || v < 0 {
			t.Errorf("rul evaluate %s: %q, want a number >= 0", k, kv[k])
		}
	}
	if !strings.HasSuffix(kv["time"], "s") {
		t.Errorf("rul evaluate time: %q, want a duration", kv["time"])
	}

	// --out: unit, prediction, truth.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	truth := []string{"29", "10", "26"}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("--out file:\n%s\nwant 3 lines", b)
	}
	var sq float64
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != strconv.Itoa(i+1) || f[2] != truth[i] {
			t.Errorf("--out line %q, want unit %d, a prediction, %s", line, i+1, truth[i])
			continue
		}
		p, err := strconv.ParseFloat(f[1], 64)
		if err != nil || p < 0 || p > 125 {
			t.Errorf("--out line %q: prediction not in [0, 125]", line)
		}
		tr, _ := strconv.ParseFloat(f[2], 64)
		sq += (p - tr) * (p - tr)
	}
	// The summary's RMSE is that of the file's predictions.
	if rmse := strconv.FormatFloat(math.Sqrt(sq/3), 'f', 2, 64); rmse != kv["RMSE"] {
		t.Errorf("rul evaluate RMSE %s; the --out file's is %s", kv["RMSE"], rmse)
	}

	// An existing file is kept without --force, replaced with it.
	code, _, stderr = runCLI(t, offline, append([]string{"maintenance", "rul", "evaluate", "--out", out}, rulFiles...)...)
	if code != exitUsage || !strings.Contains(stderr, "the file exists; --force replaces it") {
		t.Errorf("rul evaluate --out of an existing file = %d, %q; want %d, the file exists", code, stderr, exitUsage)
	}
	if err := os.WriteFile(out, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, offline, append([]string{"maintenance", "rul", "evaluate", "--out", out, "--force"}, rulFiles...)...); code != exitOK {
		t.Fatalf("rul evaluate --force = %d; stderr:\n%s", code, stderr)
	}
	if again, _ := os.ReadFile(out); string(again) != string(b) {
		t.Errorf("rul evaluate --force wrote\n%s\nwant the same predictions as before\n%s", again, b)
	}
}

func TestMaintenanceRULEvaluateJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, offline, append([]string{"-o", "json", "maintenance", "rul", "evaluate", "--seed", "3", "--cap", "100"}, rulFiles...)...)
	if code != exitOK {
		t.Fatalf("rul evaluate -o json = %d; stderr:\n%s", code, stderr)
	}
	var res rulEvaluation
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("rul evaluate -o json: %v; output:\n%s", err, stdout)
	}
	if res.TrainUnits != 8 || res.TrainObservations != 498 || res.TestUnits != 3 || res.ChannelsIn != 24 ||
		!slices.Equal(res.Channels, []string{"s2", "s3", "s7", "s11"}) || res.Seed != 3 || res.Cap != 100 ||
		!(res.RMSE >= 0) || !(res.PHM08 >= 0) || !(res.Seconds >= 0) {
		t.Errorf("rul evaluate -o json = %+v", res)
	}
}

func TestMaintenanceRULValidate(t *testing.T) {
	code, stdout, stderr := runCLI(t, offline, "-o", "json", "maintenance", "rul", "validate",
		"--train", filepath.Join("testdata", "rul_train.txt"), "--folds", "2", "--cuts", "3")
	if code != exitOK {
		t.Fatalf("rul validate = %d; stderr:\n%s", code, stderr)
	}
	var res rulValidation
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("rul validate -o json: %v; output:\n%s", err, stdout)
	}
	if res.Units != 8 || res.Predictions != 24 || res.Folds != 2 || !(res.RMSE > 0) {
		t.Errorf("rul validate -o json = %+v, want 8 units, 24 predictions, 2 folds", res)
	}
	code, stdout, stderr = runCLI(t, offline, "maintenance", "rul", "validate",
		"--train", filepath.Join("testdata", "rul_train.txt"), "--folds", "2", "--cuts", "3")
	if code != exitOK || !strings.HasPrefix(stdout, "held out:            8 units in 2 folds, 24 predictions\nRMSE: ") {
		t.Errorf("rul validate = %d,\n%s%s", code, stdout, stderr)
	}
}

func TestMaintenanceRULErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	train, err := os.ReadFile(filepath.Join("testdata", "rul_train.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(train), "\n")
	lines[2] = "1 3 0.1 0.2\n"
	if err := os.WriteFile(bad, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	twoTruths := filepath.Join(dir, "truth.txt")
	if err := os.WriteFile(twoTruths, []byte("1\n2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	with := func(flag, value string) []string {
		args := slices.Clone(rulFiles)
		args[slices.Index(args, flag)+1] = value
		return args
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no train", []string{"--test", "x", "--truth", "y"}, "--train: required"},
		{"no test", []string{"--train", "x", "--truth", "y"}, "--test: required"},
		{"no truth", []string{"--train", "x", "--test", "y"}, "--truth: required"},
		{"format", append([]string{"--format", "csv"}, rulFiles...), `--format: want cmapss, got "csv"`},
		{"cap", append([]string{"--cap", "0"}, rulFiles...), "--cap: must be positive"},
		{"force without out", append([]string{"--force"}, rulFiles...), "--force: replaces the file of --out"},
		{"missing file", with("--test", filepath.Join(dir, "none.txt")), "none.txt\": no such file or directory"},
		{"bad line", with("--train", bad), "bad.txt\": cmapss: line 3: want 26 columns, got 4"},
		{"truth count", with("--truth", twoTruths), "2 values for the 3 units of --test"},
		{"argument", append([]string{"extra"}, rulFiles...), "want no arguments, got 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, offline, append([]string{"maintenance", "rul", "evaluate"}, tc.args...)...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("rul evaluate %q = %d, %q; want %d, %q", tc.args, code, stderr, exitUsage, tc.want)
			}
		})
	}

	// rul among the verbs of maintenance, which may have others.
	code, _, stderr := runCLI(t, offline, "maintenance")
	if code != exitUsage || !regexp.MustCompile(`missing command, one of: (.*, )?rul(,|\n)`).MatchString(stderr) {
		t.Errorf("maintenance = %d, %q; want %d, missing command, one of: ... rul", code, stderr, exitUsage)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"maintenance", "rul"}, "missing command, one of: evaluate, validate"},
		{[]string{"maintenance", "rul", "validate", "--train", bad}, "line 3"},
		{[]string{"maintenance", "rul", "validate", "--train", filepath.Join("testdata", "rul_train.txt"), "--folds", "9"}, "--folds: 9 folds of 8 units"},
		{[]string{"maintenance", "rul", "validate", "--train", filepath.Join("testdata", "rul_train.txt"), "--cuts", "0"}, "--cuts: must be positive"},
	} {
		code, _, stderr := runCLI(t, offline, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q = %d, %q; want %d, %q", tc.args, code, stderr, exitUsage, tc.want)
		}
	}
}
