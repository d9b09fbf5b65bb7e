package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// rolloutsPrefix is the collection part of a rollout's resource name.
const rolloutsPrefix = "rollouts/"

// rolloutIDPattern is the rollout id as the server checks it.
var rolloutIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// parseRolloutID accepts a bare id ("pumps-2-5-0") or a resource name
// ("rollouts/pumps-2-5-0") and returns the id.
func parseRolloutID(arg string) (string, error) {
	id := strings.TrimPrefix(arg, rolloutsPrefix)
	if !rolloutIDPattern.MatchString(id) {
		return "", fmt.Errorf("rollout id %q: want 1 to 63 characters of [a-z0-9-], starting with a letter or digit", arg)
	}
	return id, nil
}

// rolloutStates maps --state of "rollout list" to the API's states.
var rolloutStates = map[string]medfleetv1.RolloutState{
	"running":   medfleetv1.RolloutState_ROLLOUT_STATE_RUNNING,
	"paused":    medfleetv1.RolloutState_ROLLOUT_STATE_PAUSED,
	"completed": medfleetv1.RolloutState_ROLLOUT_STATE_COMPLETED,
	"aborted":   medfleetv1.RolloutState_ROLLOUT_STATE_ABORTED,
}

// executionStates maps --state of "rollout devices" to the API's states;
// the words are also the columns of the counts.
var executionStates = map[string]medfleetv1.ExecutionState{
	"queued":      medfleetv1.ExecutionState_EXECUTION_STATE_QUEUED,
	"notified":    medfleetv1.ExecutionState_EXECUTION_STATE_NOTIFIED,
	"downloading": medfleetv1.ExecutionState_EXECUTION_STATE_DOWNLOADING,
	"downloaded":  medfleetv1.ExecutionState_EXECUTION_STATE_DOWNLOADED,
	"deferred":    medfleetv1.ExecutionState_EXECUTION_STATE_DEFERRED,
	"installing":  medfleetv1.ExecutionState_EXECUTION_STATE_INSTALLING,
	"succeeded":   medfleetv1.ExecutionState_EXECUTION_STATE_SUCCEEDED,
	"failed":      medfleetv1.ExecutionState_EXECUTION_STATE_FAILED,
	"timed_out":   medfleetv1.ExecutionState_EXECUTION_STATE_TIMED_OUT,
	"canceled":    medfleetv1.ExecutionState_EXECUTION_STATE_CANCELED,
	"skipped":     medfleetv1.ExecutionState_EXECUTION_STATE_SKIPPED,
}

// stateWords lists the keys of a --state map, in order, for messages.
func stateWords[V any](m map[string]V) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

func rolloutStateWord(s medfleetv1.RolloutState) string {
	return enumWord(s.String(), "ROLLOUT_STATE_")
}

// pauseReasonWord is a pause reason in words: "error threshold".
func pauseReasonWord(r medfleetv1.PauseReason) string {
	return strings.ReplaceAll(enumWord(r.String(), "PAUSE_REASON_"), "_", " ")
}

func waveStateWord(s medfleetv1.WaveState) string {
	return enumWord(s.String(), "WAVE_STATE_")
}

func executionStateWord(s medfleetv1.ExecutionState) string {
	return enumWord(s.String(), "EXECUTION_STATE_")
}

// updateResults are the LwM2M firmware update results (object 5, resource
// 5) that devices report, as coap/firmware.go defines them: a short name
// for tables and what it means.
var updateResults = map[int32][2]string{
	0:  {"initial", "no result yet"},
	1:  {"success", "the new image runs and passed its self-test"},
	2:  {"no storage", "not enough flash for the image"},
	3:  {"no memory", "out of RAM during the download"},
	4:  {"link lost", "the connection was lost during the download"},
	5:  {"integrity", "SHA-256, size or signature check failed"},
	6:  {"unsupported", "not an image for this device's model"},
	7:  {"invalid uri", "the server does not have the image"},
	8:  {"update failed", "the install or the self-test failed; the previous image runs again"},
	9:  {"bad protocol", "unsupported delivery protocol"},
	10: {"cancelled", "the server withdrew the image before the install"},
	11: {"deferred", "busy past the maximum defer period; nothing was installed"},
}

// resultWord is "5 integrity"; "-" for no result.
func resultWord(r int32) string {
	if r == 0 {
		return "-"
	}
	if n, ok := updateResults[r]; ok {
		return strconv.Itoa(int(r)) + " " + n[0]
	}
	return strconv.Itoa(int(r))
}

// resultMeaning is "integrity: SHA-256, size or signature check failed".
func resultMeaning(r int32) string {
	if n, ok := updateResults[r]; ok {
		return n[0] + ": " + n[1]
	}
	return "unknown result"
}

// withRolloutClient dials the server, runs fn and closes the connection.
func (c *cli) withRolloutClient(ctx context.Context, fn func(medfleetv1.RolloutServiceClient) error) error {
	return c.withConn(ctx, func(conn *grpc.ClientConn) error {
		return fn(medfleetv1.NewRolloutServiceClient(conn))
	})
}

func (c *cli) rolloutCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rollout",
		Aliases: []string{"rollouts"},
		Short:   "Roll firmware out in waves; watch, pause, resume and abort rollouts",
		Long: `A rollout installs a firmware image (an artifact) on the devices of its
models, narrowed by a filter, in waves: by default a canary of 3 devices,
then 25 %, then everyone, each wave soaking 8 h once it succeeded. A wave's
error threshold pauses the rollout; a person resumes or aborts it. Devices
install only while a maintenance window is open, if the rollout has any,
and never while in clinical use.

Rollouts are named by their id, as in "pumps-2-5-0", or by their resource
name, as in "rollouts/pumps-2-5-0". Waves are numbered from 1.`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(
		c.rolloutCreateCommand(),
		c.rolloutGetCommand(),
		c.rolloutListCommand(),
		c.rolloutDevicesCommand(),
		c.rolloutPauseCommand(),
		c.rolloutResumeCommand(),
		c.rolloutAbortCommand(),
	)
	return cmd
}

// printRollout writes a rollout in the chosen output format.
func (c *cli) printRollout(r *medfleetv1.Rollout) error {
	if c.flags.output == "json" {
		return writeJSON(c.stdout, r)
	}
	return writeRollout(c.stdout, r, c.now())
}

// rolloutTarget holds the flags that choose a rollout's devices.
type rolloutTarget struct {
	site, fromVersion string
	labels            labelsFlag
	raw               string // --filter, appended as given
}

// filter is the AIP-160 filter of the flags: site, labels in the order
// given, firmware version, then --filter, joined by AND. Empty: every
// device of the artifact's models.
func (t rolloutTarget) filter() (string, error) {
	if _, err := t.labels.set(); err != nil {
		return "", err
	}
	var terms []string
	if t.site != "" {
		terms = append(terms, "site = "+strconv.Quote(t.site))
	}
	for _, l := range t.labels {
		terms = append(terms, "labels."+l.key+" = "+strconv.Quote(l.value))
	}
	if t.fromVersion != "" {
		terms = append(terms, "firmware_version = "+strconv.Quote(t.fromVersion))
	}
	if raw := strings.TrimSpace(t.raw); raw != "" {
		terms = append(terms, raw)
	}
	return strings.Join(terms, " AND "), nil
}

// Wave defaults that "rollout create" writes when it builds the waves
// itself, as the server's default waves have them.
const (
	defaultCanary = 3
	defaultSoak   = 8 * time.Hour
)

// defaultPercents are the cumulative percentages of the default waves
// after the canary.
var defaultPercents = []float64{25, 100}

// waveSpec is what the wave flags say; nil and empty mean not given.
type waveSpec struct {
	canary      *int32
	percents    []float64
	soak        *time.Duration
	success     *float64
	errorPct    *float64
	minFinished *int32
}

// given reports whether any wave flag was given.
func (s waveSpec) given() bool {
	return s.canary != nil || s.percents != nil || s.soak != nil || s.success != nil || s.errorPct != nil || s.minFinished != nil
}

// buildWaves builds the waves of the flags: a canary of --canary devices
// (3 unless given; 0: none), then the cumulative --waves percentages (25,
// 100 unless given). Every wave but the last soaks --soak (8h unless
// given). --success, --error and --min-finished set the thresholds of the
// percentage waves; the canary keeps the server's strict defaults (every
// device must succeed; the first failure pauses). Without any wave flag
// there are no waves: the server's defaults apply.
func buildWaves(s waveSpec) ([]*medfleetv1.Wave, error) {
	if !s.given() {
		return nil, nil
	}
	canary, percents, soak := int32(defaultCanary), defaultPercents, defaultSoak
	if s.canary != nil {
		canary = *s.canary
	}
	if s.percents != nil {
		percents = s.percents
	}
	if s.soak != nil {
		soak = *s.soak
	}
	switch {
	case canary < 0:
		return nil, fmt.Errorf("--canary: must not be negative, got %d", canary)
	case len(percents) == 0:
		return nil, errors.New("--waves: want cumulative percentages ending at 100, such as 25,100")
	case (s.errorPct == nil) != (s.minFinished == nil):
		return nil, errors.New("--error and --min-finished go together: pause when more than --error percent of the wave's finished devices failed, once --min-finished finished")
	case s.success != nil && (*s.success <= 0 || *s.success > 100):
		return nil, fmt.Errorf("--success: want a percentage above 0 and at most 100, got %v", *s.success)
	case s.errorPct != nil && (*s.errorPct < 0 || *s.errorPct > 100):
		return nil, fmt.Errorf("--error: want a percentage from 0 to 100, got %v", *s.errorPct)
	case s.minFinished != nil && *s.minFinished < 1:
		return nil, fmt.Errorf("--min-finished: want at least 1, got %d", *s.minFinished)
	case soak < 0:
		return nil, fmt.Errorf("--soak: must not be negative, got %v", soak)
	}
	var waves []*medfleetv1.Wave
	if canary > 0 {
		waves = append(waves, &medfleetv1.Wave{Devices: canary})
	}
	for _, p := range percents {
		w := &medfleetv1.Wave{CumulativePercent: p}
		if s.success != nil {
			w.SuccessPercent = *s.success
		}
		if s.errorPct != nil {
			w.ErrorPercent, w.MinFinished = *s.errorPct, *s.minFinished
		}
		waves = append(waves, w)
	}
	for _, w := range waves[:len(waves)-1] {
		if soak > 0 {
			w.Soak = durationpb.New(soak)
		}
	}
	return waves, nil
}

// parsePercents parses --waves: comma-separated cumulative percentages,
// rising, the last 100; a "%" after each is allowed.
func parsePercents(s string) ([]float64, error) {
	var out []float64
	prev := 0.0
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSuffix(strings.TrimSpace(part), "%")
		p, err := strconv.ParseFloat(part, 64)
		if err != nil {
			return nil, fmt.Errorf("--waves: %q is not a percentage; want cumulative percentages such as 25,100", part)
		}
		if p <= prev || p > 100 {
			return nil, fmt.Errorf("--waves: %v must be above the previous wave's (%v) and at most 100", p, prev)
		}
		out, prev = append(out, p), p
	}
	if prev != 100 {
		return nil, fmt.Errorf("--waves: the last wave must be 100, so that every device is taken; got %v", prev)
	}
	return out, nil
}

// parseRate parses --rate: devices per minute, "10/min", or per hour,
// "120/h", or a bare number of devices per minute.
func parseRate(s string) (float64, error) {
	num, per := s, 1.0
	if n, ok := strings.CutSuffix(s, "/min"); ok {
		num = n
	} else if n, ok := strings.CutSuffix(s, "/h"); ok {
		num, per = n, 60
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("--rate: want devices per minute, such as 10/min, or per hour, such as 120/h; got %q", s)
	}
	return v / per, nil
}

// windowDays are the days of a window in the server's words, in order.
var windowDays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// parseWindow parses a --window: key=value pairs separated by ";":
//
//	sites=north,south  sites it applies to (default: every site)
//	tz=Europe/Paris    IANA time zone (default: UTC)
//	days=sat,sun       days it opens on, also ranges as mon-fri (default: every day)
//	start=23:00        local opening time (required)
//	duration=3h        how long it stays open, 1m to 24h (required)
//
// The server checks the time zone.
func parseWindow(s string) (*medfleetv1.MaintenanceWindow, error) {
	w := &medfleetv1.MaintenanceWindow{}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return nil, fmt.Errorf("%q: want key=value", part)
		}
		if seen[k] {
			return nil, fmt.Errorf("%s: given twice", k)
		}
		seen[k] = true
		switch k {
		case "sites", "site":
			for site := range strings.SplitSeq(v, ",") {
				if site = strings.TrimSpace(site); site != "" {
					w.Sites = append(w.Sites, site)
				}
			}
		case "tz", "time_zone":
			w.TimeZone = v
		case "days":
			days, err := parseWindowDays(v)
			if err != nil {
				return nil, err
			}
			w.Days = days
		case "start":
			t, err := time.Parse("15:04", v)
			if err != nil {
				return nil, fmt.Errorf("start: %q is not a local time HH:MM", v)
			}
			w.Start = t.Format("15:04")
		case "duration":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Minute || d > 24*time.Hour {
				return nil, fmt.Errorf("duration: %q is not a duration from 1m to 24h, such as 3h", v)
			}
			w.Duration = durationpb.New(d)
		default:
			return nil, fmt.Errorf("%s: unknown key; want sites, tz, days, start, duration", k)
		}
	}
	switch {
	case w.GetStart() == "":
		return nil, errors.New("start: required, the local opening time HH:MM")
	case w.GetDuration() == nil:
		return nil, errors.New("duration: required, such as 3h")
	}
	return w, nil
}

// parseWindowDays parses a window's days: names and ranges, "sat,sun",
// "mon-fri", "fri-mon" (over the weekend). Each day once, in week order.
func parseWindowDays(s string) ([]string, error) {
	index := func(d string) (int, error) {
		d = strings.ToLower(strings.TrimSpace(d))
		if i := slices.Index(windowDays, d); i >= 0 {
			return i, nil
		}
		return 0, fmt.Errorf("days: %q is not a day; use mon, tue, wed, thu, fri, sat, sun, or a range as mon-fri", d)
	}
	var on [7]bool
	for part := range strings.SplitSeq(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		i, err := index(from)
		if err != nil {
			return nil, err
		}
		j := i
		if isRange {
			if j, err = index(to); err != nil {
				return nil, err
			}
		}
		for k := i; ; k = (k + 1) % 7 {
			on[k] = true
			if k == j {
				break
			}
		}
	}
	var days []string
	for i, d := range windowDays {
		if on[i] {
			days = append(days, d)
		}
	}
	return days, nil
}

// formatWindow writes a window as --window takes it.
func formatWindow(w *medfleetv1.MaintenanceWindow) string {
	var parts []string
	if len(w.GetSites()) > 0 {
		parts = append(parts, "sites="+strings.Join(w.GetSites(), ","))
	}
	if tz := w.GetTimeZone(); tz != "" {
		parts = append(parts, "tz="+tz)
	}
	if len(w.GetDays()) > 0 {
		parts = append(parts, "days="+strings.Join(w.GetDays(), ","))
	}
	parts = append(parts, "start="+w.GetStart(), "duration="+shortDuration(w.GetDuration().AsDuration()))
	return strings.Join(parts, ";")
}

// shortDuration is a duration without its zero units: "8h", "1h30m",
// "90s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// rolloutCreateFlags are the flags of "rollout create".
type rolloutCreateFlags struct {
	artifact, id, description string
	target                    rolloutTarget
	canary, minFinished       int32
	waves                     string
	soak                      daysFlag
	success, errorPct         float64
	rate                      string
	rateFactor, rateMax       float64
	rateEvery                 int32
	deviceTimeout             daysFlag
	retries                   int32
	windows                   []string
	dryRun                    bool
}

func (f *rolloutCreateFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.artifact, "artifact", "", "the image to install: its sha256, a unique prefix, or artifacts/{sha256}")
	fl.StringVar(&f.id, "id", "", "the rollout's id, 1-63 characters of [a-z0-9-] (default: the server picks one)")
	fl.StringVar(&f.target.raw, "filter", "", "AIP-160 filter over devices, ANDed with --site, --label and --from-version")
	fl.StringVar(&f.target.site, "site", "", "only devices of this site")
	fl.Var(&f.target.labels, "label", "only devices with this label, key=value (repeatable)")
	fl.StringVar(&f.target.fromVersion, "from-version", "", "only devices running this firmware version")
	fl.Int32Var(&f.canary, "canary", defaultCanary, "devices in the first wave, the canary; 0: no canary")
	fl.StringVar(&f.waves, "waves", "25,100", "cumulative percentages of the waves after the canary; the last must be 100")
	f.soak = daysFlag(defaultSoak)
	fl.Var(&f.soak, "soak", "how long a wave runs the image, once it succeeded, before the next one starts")
	fl.Float64Var(&f.success, "success", 95, "percentage of a wave's devices that must succeed before it soaks")
	fl.Float64Var(&f.errorPct, "error", 2, "pause when more than this percentage of a wave's finished devices failed (with --min-finished)")
	fl.Int32Var(&f.minFinished, "min-finished", 20, "devices of a wave that must finish before --error counts")
	fl.StringVar(&f.rate, "rate", "", "devices offered the image per minute, such as 10/min or 120/h (default: no limit)")
	fl.Float64Var(&f.rateFactor, "rate-factor", 0, "multiply the rate by this factor (1.1 to 5) every --rate-every devices that succeeded")
	fl.Int32Var(&f.rateEvery, "rate-every", 0, "devices that must succeed for each --rate-factor increase")
	fl.Float64Var(&f.rateMax, "rate-max", 0, "the most devices per minute that --rate-factor reaches")
	f.deviceTimeout = daysFlag(24 * time.Hour)
	fl.Var(&f.deviceTimeout, "device-timeout", "a device that does not download, or install, within this time times out")
	fl.Int32Var(&f.retries, "retries", 0, "how many more times a device that timed out or lost its link is asked (default 2)")
	fl.StringArrayVar(&f.windows, "window", nil, "a maintenance `window`, as 'sites=north;tz=Europe/Paris;days=sat,sun;start=23:00;duration=3h' (repeatable)")
	fl.StringVar(&f.description, "description", "", "what the rollout is for, for people")
	fl.BoolVar(&f.dryRun, "dry-run", false, "check the rollout and count the devices it would take; create nothing")
}

// rollout builds the rollout of the flags, leaving the fields of flags not
// given unset, so that the server's defaults apply. The errors name the
// flags.
func (f *rolloutCreateFlags) rollout(cmd *cobra.Command) (*medfleetv1.Rollout, error) {
	changed := cmd.Flags().Changed
	filter, err := f.target.filter()
	if err != nil {
		return nil, err
	}
	r := &medfleetv1.Rollout{Description: f.description}
	if filter != "" {
		r.Target = &medfleetv1.RolloutTarget{Filter: filter}
	}

	var spec waveSpec
	if changed("canary") {
		spec.canary = &f.canary
	}
	if changed("waves") {
		if spec.percents, err = parsePercents(f.waves); err != nil {
			return nil, err
		}
	}
	if changed("soak") {
		soak := time.Duration(f.soak)
		spec.soak = &soak
	}
	if changed("success") {
		spec.success = &f.success
	}
	if changed("error") {
		spec.errorPct = &f.errorPct
	}
	if changed("min-finished") {
		spec.minFinished = &f.minFinished
	}
	if r.Waves, err = buildWaves(spec); err != nil {
		return nil, err
	}

	if r.Rate, err = f.buildRate(changed); err != nil {
		return nil, err
	}
	if changed("device-timeout") {
		if f.deviceTimeout == 0 {
			return nil, errors.New("--device-timeout: must be positive")
		}
		r.DeviceTimeout = durationpb.New(time.Duration(f.deviceTimeout))
	}
	if changed("retries") {
		if f.retries < 0 {
			return nil, fmt.Errorf("--retries: must not be negative, got %d", f.retries)
		}
		r.MaxRetries = &f.retries
	}
	for _, s := range f.windows {
		w, err := parseWindow(s)
		if err != nil {
			return nil, fmt.Errorf("--window %q: %v", s, err)
		}
		r.Windows = append(r.Windows, w)
	}
	return r, nil
}

// buildRate is the rate of the --rate flags; nil without them.
func (f *rolloutCreateFlags) buildRate(changed func(string) bool) (*medfleetv1.RolloutRate, error) {
	exp := changed("rate-factor") || changed("rate-every") || changed("rate-max")
	if !changed("rate") {
		if exp {
			return nil, errors.New("--rate-factor, --rate-every and --rate-max need --rate, the rate to start with")
		}
		return nil, nil
	}
	perMinute, err := parseRate(f.rate)
	if err != nil {
		return nil, err
	}
	rate := &medfleetv1.RolloutRate{PerMinute: perMinute}
	if !exp {
		return rate, nil
	}
	switch {
	case !changed("rate-factor"):
		return nil, errors.New("--rate-every and --rate-max need --rate-factor")
	case f.rateFactor < 1.1 || f.rateFactor > 5:
		return nil, fmt.Errorf("--rate-factor: want 1.1 to 5, got %v", f.rateFactor)
	case f.rateEvery < 1:
		return nil, errors.New("--rate-every: required with --rate-factor, at least 1")
	case f.rateMax < 0:
		return nil, fmt.Errorf("--rate-max: must not be negative, got %v", f.rateMax)
	case perMinute == 0:
		return nil, errors.New("--rate: must be positive with --rate-factor")
	}
	rate.IncrementFactor, rate.IncreaseEvery, rate.MaxPerMinute = f.rateFactor, f.rateEvery, f.rateMax
	return rate, nil
}

const rolloutCreateLong = `Create a rollout of an image and start it. Its devices are chosen now: the
devices of the artifact's models that match the filter. --site, --label and
--from-version are joined by AND into an AIP-160 filter, and so is
--filter, which takes the raw syntax (see "device list --help"):
  --site north --label unit=4-west --from-version 2.4.1
    site = "north" AND labels.unit = "4-west" AND firmware_version = "2.4.1"
Devices already at the version are skipped; a device in another unfinished
rollout makes the server refuse the rollout (exit code 6, naming it).

Waves: without a wave flag, the server's default: a canary of 3 devices,
then 25 %, then 100 %, each but the last soaking 8h. With any of --canary,
--waves, --soak, --success, --error, --min-finished, the waves are a canary
of --canary devices (0: none), then the cumulative --waves percentages;
--soak applies to every wave but the last. --success, --error and
--min-finished set the thresholds of the percentage waves (server defaults:
95 % must succeed; pause when more than 2 % of 20 or more finished devices
failed); the canary keeps its strict defaults: all must succeed, and the
first failure pauses the rollout.

--rate limits how many devices are offered the image a minute; with
--rate-factor the rate grows by that factor every --rate-every devices that
succeeded, up to --rate-max. --window (repeatable) restricts installs to
maintenance windows in a site's local time:
  sites=north,south  sites it applies to (default: every site)
  tz=Europe/Paris    IANA time zone (default: UTC)
  days=sat,sun       days it opens on; ranges as mon-fri (default: every day)
  start=23:00        local opening time (required)
  duration=3h        how long it stays open, 1m to 24h (required)
Devices download at any time; they install only while a window is open.

Flags not given leave their fields unset: the server's defaults apply.
--dry-run asks the server to check the rollout and count its devices, and
creates nothing.`

func (c *cli) rolloutCreateCommand() *cobra.Command {
	var f rolloutCreateFlags
	cmd := &cobra.Command{
		Use:   "create --artifact SHA256 [flags]",
		Short: "Create and start a rollout of a firmware image",
		Long:  rolloutCreateLong,
		Example: `  medfleetctl rollout create --artifact 9f86d081884c --site north --dry-run
  medfleetctl rollout create --artifact 9f86d081884c --id pumps-2-5-0 --site north --canary 5 --waves 25,100 --soak 12h \
    --rate 10/min --window 'sites=north;tz=Europe/Paris;days=sat,sun;start=23:00;duration=3h'`,
		Args: exactArgs(0, "no arguments (the image is given by --artifact)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.artifact == "" {
				return usageErrorf(cmd, "--artifact: required, the image to install")
			}
			digits, whole, err := parseArtifactArg(f.artifact)
			if err != nil {
				return usageErrorf(cmd, "--artifact: %v", err)
			}
			if f.id != "" {
				if _, err := parseRolloutID(f.id); err != nil {
					return usageErrorf(cmd, "--id: %v", err)
				}
			}
			r, err := f.rollout(cmd)
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withConn(cmd.Context(), func(conn *grpc.ClientConn) error {
				r.Artifact, err = c.resolveArtifactName(cmd, medfleetv1.NewFirmwareServiceClient(conn), digits, whole)
				if err != nil {
					return err
				}
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				created, err := medfleetv1.NewRolloutServiceClient(conn).CreateRollout(rctx, &medfleetv1.CreateRolloutRequest{
					RolloutId:    f.id,
					Rollout:      r,
					ValidateOnly: f.dryRun,
				})
				if err != nil {
					return err
				}
				switch {
				case c.flags.output == "json":
					return writeJSON(c.stdout, created)
				case f.dryRun:
					return writeDryRun(c.stdout, created)
				}
				return writeRollout(c.stdout, created, c.now())
			})
		},
	}
	f.add(cmd)
	return cmd
}

func (c *cli) rolloutGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a rollout: state, waves, device counts, failures, history",
		Long: `Show a rollout: its state and why it is paused, the image, the waves with
their thresholds and their devices by state, the failures by LwM2M update
result, and the last 10 events of its history. With -o json the output is
the Rollout, with its whole history.`,
		Args: exactArgs(1, "one rollout id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRolloutID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withRolloutClient(cmd.Context(), func(client medfleetv1.RolloutServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				r, err := client.GetRollout(rctx, &medfleetv1.GetRolloutRequest{Name: rolloutsPrefix + id})
				if err != nil {
					return err
				}
				return c.printRollout(r)
			})
		},
	}
}

func (c *cli) rolloutListCommand() *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:   "list [--state S]",
		Short: "List rollouts, newest first",
		Long: `List rollouts, newest first, in every state or in one (--state running,
paused, completed or aborted). With -o json the output is one
ListRolloutsResponse holding them all.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &medfleetv1.ListRolloutsRequest{}
			if state != "" {
				s, ok := rolloutStates[state]
				if !ok {
					return usageErrorf(cmd, "--state: want running, paused, completed or aborted, got %q", state)
				}
				req.State = s
			}
			var rollouts []*medfleetv1.Rollout
			err := c.withRolloutClient(cmd.Context(), func(client medfleetv1.RolloutServiceClient) error {
				var err error
				rollouts, err = allPages(cmd.Context(), c, "list rollouts", func(ctx context.Context, token string) ([]*medfleetv1.Rollout, string, error) {
					req.PageToken = token
					resp, err := client.ListRollouts(ctx, req)
					return resp.GetRollouts(), resp.GetNextPageToken(), err
				})
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, &medfleetv1.ListRolloutsResponse{Rollouts: rollouts})
			}
			return writeRolloutTable(c.stdout, rollouts, c.now())
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only rollouts in this state: running, paused, completed or aborted")
	return cmd
}

func (c *cli) rolloutDevicesCommand() *cobra.Command {
	var (
		state string
		wave  int32
	)
	cmd := &cobra.Command{
		Use:   "devices ID [--state S] [--wave N]",
		Short: "List a rollout's devices and where each one is",
		Long: `List a rollout's devices, by id, with their wave, state, the last LwM2M
update result they reported, how many times they were offered the image and
the version they ran. --state keeps the devices in one state: ` + stateWords(executionStates) + `;
--wave those of one wave, numbered from 1. With -o json the output is one
ListRolloutDevicesResponse holding them all.`,
		Example: `  medfleetctl rollout devices pumps-2-5-0 --state failed
  medfleetctl rollout devices pumps-2-5-0 --wave 1`,
		Args: exactArgs(1, "one rollout id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRolloutID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			req := &medfleetv1.ListRolloutDevicesRequest{Rollout: rolloutsPrefix + id}
			if state != "" {
				s, ok := executionStates[state]
				if !ok {
					return usageErrorf(cmd, "--state: want one of %s, got %q", stateWords(executionStates), state)
				}
				req.State = s
			}
			if cmd.Flags().Changed("wave") {
				if wave < 1 {
					return usageErrorf(cmd, "--wave: waves are numbered from 1, got %d", wave)
				}
				req.Wave = wave
			}
			var devices []*medfleetv1.RolloutDevice
			err = c.withRolloutClient(cmd.Context(), func(client medfleetv1.RolloutServiceClient) error {
				var err error
				devices, err = allPages(cmd.Context(), c, "list rollout devices", func(ctx context.Context, token string) ([]*medfleetv1.RolloutDevice, string, error) {
					req.PageToken = token
					resp, err := client.ListRolloutDevices(ctx, req)
					return resp.GetDevices(), resp.GetNextPageToken(), err
				})
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, &medfleetv1.ListRolloutDevicesResponse{Devices: devices})
			}
			return writeRolloutDeviceTable(c.stdout, devices, c.now())
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only devices in this state, such as failed")
	cmd.Flags().Int32Var(&wave, "wave", 0, "only devices of this wave, numbered from 1")
	return cmd
}

// rolloutAction is what pause, resume and abort share: one rollout id,
// an optional etag, and the rollout printed after.
func (c *cli) rolloutAction(cmd *cobra.Command, arg string, call func(ctx context.Context, client medfleetv1.RolloutServiceClient, name string) (*medfleetv1.Rollout, error)) error {
	id, err := parseRolloutID(arg)
	if err != nil {
		return usageError{cmd: cmd.CommandPath(), err: err}
	}
	return c.withRolloutClient(cmd.Context(), func(client medfleetv1.RolloutServiceClient) error {
		rctx, cancel := c.rpcContext(cmd.Context())
		defer cancel()
		r, err := call(rctx, client, rolloutsPrefix+id)
		if err != nil {
			return err
		}
		return c.printRollout(r)
	})
}

func (c *cli) rolloutPauseCommand() *cobra.Command {
	var reason, etag string
	cmd := &cobra.Command{
		Use:   "pause ID --reason R",
		Short: "Pause a rollout, saying why",
		Long: `Pause a rollout: no device is offered the image and none is allowed to
install; devices already installing finish. The reason goes to the
rollout's history and the audit log. Pausing a rollout already paused by a
person or a threshold changes nothing; one waiting for a window or for
devices in clinical use becomes paused by a person.`,
		Example: `  medfleetctl rollout pause pumps-2-5-0 --reason "occlusion alarms on 4-west, investigating"`,
		Args:    exactArgs(1, "one rollout id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageErrorf(cmd, "--reason: required, why the rollout is paused")
			}
			return c.rolloutAction(cmd, args[0], func(ctx context.Context, client medfleetv1.RolloutServiceClient, name string) (*medfleetv1.Rollout, error) {
				return client.PauseRollout(ctx, &medfleetv1.PauseRolloutRequest{Name: name, Reason: reason, Etag: etag})
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the rollout is paused")
	cmd.Flags().StringVar(&etag, "etag", "", "pause only if the rollout still has this etag")
	return cmd
}

func (c *cli) rolloutResumeCommand() *cobra.Command {
	var etag string
	cmd := &cobra.Command{
		Use:   "resume ID",
		Short: "Resume a rollout paused by a person or by an error threshold",
		Long: `Resume a rollout paused by a person or by a wave's error threshold: the
failures so far are accepted, and only new ones pause it again. A rollout
waiting for a window or for devices in clinical use resumes by itself, and
one whose version was blocked can only be aborted: the server refuses
those (exit code 6).`,
		Args: exactArgs(1, "one rollout id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.rolloutAction(cmd, args[0], func(ctx context.Context, client medfleetv1.RolloutServiceClient, name string) (*medfleetv1.Rollout, error) {
				return client.ResumeRollout(ctx, &medfleetv1.ResumeRolloutRequest{Name: name, Etag: etag})
			})
		},
	}
	cmd.Flags().StringVar(&etag, "etag", "", "resume only if the rollout still has this etag")
	return cmd
}

func (c *cli) rolloutAbortCommand() *cobra.Command {
	var reason, etag string
	cmd := &cobra.Command{
		Use:   "abort ID --reason R",
		Short: "End a rollout for good, saying why",
		Long: `Abort a rollout: it ends for good, and its devices that had not started
installing are told to cancel; those installing finish. The reason goes to
the rollout's history and the audit log.`,
		Example: `  medfleetctl rollout abort pumps-2-5-0 --reason "recall FSN-2026-004"`,
		Args:    exactArgs(1, "one rollout id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageErrorf(cmd, "--reason: required, why the rollout is aborted")
			}
			return c.rolloutAction(cmd, args[0], func(ctx context.Context, client medfleetv1.RolloutServiceClient, name string) (*medfleetv1.Rollout, error) {
				return client.AbortRollout(ctx, &medfleetv1.AbortRolloutRequest{Name: name, Reason: reason, Etag: etag})
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the rollout is aborted")
	cmd.Flags().StringVar(&etag, "etag", "", "abort only if the rollout still has this etag")
	return cmd
}

// rolloutStateLine is the state, and for a paused rollout why: "paused
// (manual): paused by users/alice: night shift".
func rolloutStateLine(r *medfleetv1.Rollout) string {
	s := rolloutStateWord(r.GetState())
	if r.GetState() == medfleetv1.RolloutState_ROLLOUT_STATE_PAUSED {
		s += " (" + pauseReasonWord(r.GetPauseReason()) + ")"
		if d := oneLine(r.GetPauseDetail()); d != "" {
			s += ": " + cell(d)
		}
	}
	return s
}

// rateWord says how fast devices are offered the image: "no limit",
// "10/min", "10/min, x1.5 every 20 succeeded, up to 100/min".
func rateWord(rate *medfleetv1.RolloutRate) string {
	if rate.GetPerMinute() == 0 {
		return "no limit"
	}
	s := number(rate.GetPerMinute()) + "/min"
	if f := rate.GetIncrementFactor(); f > 0 {
		s += fmt.Sprintf(", x%s every %d succeeded", number(f), rate.GetIncreaseEvery())
		if m := rate.GetMaxPerMinute(); m > 0 {
			s += ", up to " + number(m) + "/min"
		}
	}
	return s
}

// waveSize is "3 devices" for a wave of a number of devices, "to 25%"
// for a cumulative percentage.
func waveSize(w *medfleetv1.Wave) string {
	if n := w.GetDevices(); n > 0 {
		return countNoun(int(n), "device")
	}
	return "to " + number(w.GetCumulativePercent()) + "%"
}

// pausesOn says when a wave's failures pause the rollout: "first
// failure", ">2% failed of 20+ finished". Thresholds the server did not
// fill in (a dry run shows them filled) show as they are.
func pausesOn(w *medfleetv1.Wave) string {
	e, n := w.GetErrorPercent(), w.GetMinFinished()
	switch {
	case e == 0 && n <= 1:
		return "first failure"
	case e == 0:
		return fmt.Sprintf("any failure of %d+ finished", n)
	}
	return fmt.Sprintf(">%s%% failed of %d+ finished", number(e), n)
}

// soakWord is a wave's soak time, "-" for none.
func soakWord(d *durationpb.Duration) string {
	if d.AsDuration() == 0 {
		return "-"
	}
	return shortDuration(d.AsDuration())
}

// writeWaveTable writes the waves of a rollout: size, devices, thresholds,
// and with states, their state and start.
func writeWaveTable(w io.Writer, waves []*medfleetv1.Wave, withState bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	header := "  WAVE\tSIZE\tDEVICES\tSUCCESS\tPAUSES ON\tSOAK"
	if withState {
		header += "\tSTATE\tSTARTED"
	}
	fmt.Fprintln(tw, header)
	for i, wv := range waves {
		row := []string{
			"  " + strconv.Itoa(i+1),
			waveSize(wv),
			strconv.Itoa(int(wv.GetCounts().GetTotal())),
			number(wv.GetSuccessPercent()) + "%",
			pausesOn(wv),
			soakWord(wv.GetSoak()),
		}
		if withState {
			started := "-"
			if t := wv.GetStartTime(); t != nil {
				started = age(now.Sub(t.AsTime()))
			}
			row = append(row, waveStateWord(wv.GetState()), started)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// countColumns are the columns of the device counts, as --state spells
// them.
var countColumns = []string{"queued", "notified", "downloading", "downloaded", "deferred", "installing",
	"succeeded", "failed", "timed_out", "canceled", "skipped"}

// countCells are the counts in the order of countColumns.
func countCells(n *medfleetv1.ExecutionCounts) []string {
	vs := []int32{n.GetQueued(), n.GetNotified(), n.GetDownloading(), n.GetDownloaded(), n.GetDeferred(), n.GetInstalling(),
		n.GetSucceeded(), n.GetFailed(), n.GetTimedOut(), n.GetCanceled(), n.GetSkipped()}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strconv.Itoa(int(v))
	}
	return out
}

// writeCountTable writes the devices of each wave by state, and the
// totals.
func writeCountTable(w io.Writer, r *medfleetv1.Rollout) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  WAVE\tDEVICES\t"+strings.ToUpper(strings.Join(countColumns, "\t")))
	row := func(label string, n *medfleetv1.ExecutionCounts) {
		fmt.Fprintln(tw, strings.Join(append([]string{"  " + label, strconv.Itoa(int(n.GetTotal()))}, countCells(n)...), "\t"))
	}
	for i, wv := range r.GetWaves() {
		row(strconv.Itoa(i+1), wv.GetCounts())
	}
	row("total", r.GetCounts())
	return tw.Flush()
}

// historyShown is how many of the last events "rollout get" shows.
const historyShown = 10

// writeRollout writes a rollout for people: what it is, the waves, the
// devices by state, the failures and the recent history.
func writeRollout(w io.Writer, r *medfleetv1.Rollout, now time.Time) error {
	target := "every device of the artifact's models"
	if f := r.GetTarget().GetFilter(); f != "" {
		target = cell(f)
	}
	windows := []string{"any time"}
	if len(r.GetWindows()) > 0 {
		windows = make([]string, len(r.GetWindows()))
		for i, win := range r.GetWindows() {
			windows[i] = cell(formatWindow(win))
		}
	}
	wave := "-"
	if n := len(r.GetWaves()); n > 0 {
		wave = fmt.Sprintf("%d of %d", r.GetCurrentWave()+1, n)
	}
	created := timeAndAge(r.GetCreateTime(), now, "-")
	if r.GetCreator() != "" {
		created += " by " + cell(r.GetCreator())
	}
	kvs := []keyValues{
		{"name", []string{cell(r.GetName())}},
		{"state", []string{rolloutStateLine(r)}},
		{"version", []string{cell(r.GetVersion())}},
		{"artifact", []string{cell(r.GetArtifact())}},
		{"target", []string{target}},
		{"description", []string{cell(oneLine(r.GetDescription()))}},
		{"current wave", []string{wave}},
		{"rate", []string{rateWord(r.GetRate())}},
		{"device timeout", []string{soakWord(r.GetDeviceTimeout())}},
		{"retries", []string{strconv.Itoa(int(r.GetMaxRetries()))}},
		{"windows", windows},
		{"created", []string{created}},
		{"updated", []string{timeAndAge(r.GetUpdateTime(), now, "-")}},
	}
	if r.GetEndTime() != nil {
		kvs = append(kvs, keyValues{"ended", []string{timeAndAge(r.GetEndTime(), now, "-")}})
	}
	kvs = append(kvs, keyValues{"etag", []string{cell(r.GetEtag())}})
	if err := writeKeyValueLines(w, kvs); err != nil {
		return err
	}

	if _, err := fmt.Fprintln(w, "\nwaves:"); err != nil {
		return err
	}
	if err := writeWaveTable(w, r.GetWaves(), true, now); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w, "\ndevices:"); err != nil {
		return err
	}
	if err := writeCountTable(w, r); err != nil {
		return err
	}

	var b strings.Builder
	b.WriteString("\nfailures by result:")
	if len(r.GetFailuresByResult()) == 0 {
		b.WriteString(" none\n")
	} else {
		b.WriteString("\n")
		for _, code := range slices.Sorted(maps.Keys(r.GetFailuresByResult())) {
			fmt.Fprintf(&b, "  %3d  %-10s  %s\n", code, countNoun(int(r.GetFailuresByResult()[code]), "device"), resultMeaning(code))
		}
	}
	history := r.GetHistory()
	if len(history) > historyShown {
		fmt.Fprintf(&b, "\nhistory (last %d of %d events):\n", historyShown, len(history))
		history = history[len(history)-historyShown:]
	} else {
		b.WriteString("\nhistory:\n")
	}
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, e := range history {
		state := rolloutStateWord(e.GetState())
		if e.GetState() == medfleetv1.RolloutState_ROLLOUT_STATE_PAUSED {
			state += " (" + pauseReasonWord(e.GetPauseReason()) + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", eventTime(e.GetTime()), state, cell(oneLine(e.GetDetail())))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// eventTime is an event's time in RFC 3339, UTC.
func eventTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// writeDryRun writes what a rollout would take: its devices, how many are
// skipped, and its waves with the server's defaults filled in.
func writeDryRun(w io.Writer, r *medfleetv1.Rollout) error {
	n := r.GetCounts()
	take := "would take " + countNoun(int(n.GetTotal()), "device")
	if s := n.GetSkipped(); s > 0 {
		take += fmt.Sprintf(" (%d already at %s, skipped)", s, cell(r.GetVersion()))
	}
	target := "every device of the artifact's models"
	if f := r.GetTarget().GetFilter(); f != "" {
		target = cell(f)
	}
	if _, err := fmt.Fprintf(w, "dry run: the rollout %s; nothing was created\n\n", take); err != nil {
		return err
	}
	if err := writeKeyValues(w, [][2]string{
		{"artifact", cell(r.GetArtifact())},
		{"version", cell(r.GetVersion())},
		{"target", target},
		{"rate", rateWord(r.GetRate())},
		{"device timeout", soakWord(r.GetDeviceTimeout())},
		{"retries", strconv.Itoa(int(r.GetMaxRetries()))},
	}); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w, "\nwaves:"); err != nil {
		return err
	}
	return writeWaveTable(w, r.GetWaves(), false, time.Time{})
}

// writeRolloutTable writes rollouts as a table with a count.
func writeRolloutTable(w io.Writer, rollouts []*medfleetv1.Rollout, now time.Time) error {
	if len(rollouts) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tVERSION\tSTATE\tWAVE\tDEVICES\tSUCCEEDED\tFAILED\tCREATED")
		for _, r := range rollouts {
			state := rolloutStateWord(r.GetState())
			if r.GetState() == medfleetv1.RolloutState_ROLLOUT_STATE_PAUSED {
				state += " (" + pauseReasonWord(r.GetPauseReason()) + ")"
			}
			n := r.GetCounts()
			fmt.Fprintln(tw, strings.Join([]string{
				cell(strings.TrimPrefix(r.GetName(), rolloutsPrefix)),
				cell(r.GetVersion()),
				state,
				fmt.Sprintf("%d/%d", r.GetCurrentWave()+1, len(r.GetWaves())),
				strconv.Itoa(int(n.GetTotal())),
				strconv.Itoa(int(n.GetSucceeded())),
				strconv.Itoa(int(n.GetFailed() + n.GetTimedOut())),
				lastSeen(r.GetCreateTime(), now),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, countNoun(len(rollouts), "rollout"))
	return err
}

// writeRolloutDeviceTable writes a rollout's devices as a table with a
// count.
func writeRolloutDeviceTable(w io.Writer, devices []*medfleetv1.RolloutDevice, now time.Time) error {
	if len(devices) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tWAVE\tSTATE\tRESULT\tATTEMPTS\tFROM\tUPDATED\tDETAIL")
		for _, d := range devices {
			fmt.Fprintln(tw, strings.Join([]string{
				cell(deviceID(d.GetDevice())),
				strconv.Itoa(int(d.GetWave()) + 1),
				executionStateWord(d.GetState()),
				resultWord(d.GetResult()),
				strconv.Itoa(int(d.GetAttempts())),
				cell(d.GetFromVersion()),
				lastSeen(d.GetUpdateTime(), now),
				cell(oneLine(d.GetDetail())),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, countNoun(len(devices), "device"))
	return err
}
