package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestParseRolloutID(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "pumps-2-5-0", want: "pumps-2-5-0"},
		{in: "rollouts/pumps-2-5-0", want: "pumps-2-5-0"},
		{in: "a", want: "a"},
		{in: strings.Repeat("r", 63), want: strings.Repeat("r", 63)},
		{in: strings.Repeat("r", 64), wantErr: true},
		{in: "Pumps", wantErr: true},
		{in: "pumps_2", wantErr: true},
		{in: "pumps.2", wantErr: true},
		{in: "-pumps", wantErr: true},
		{in: "", wantErr: true},
		{in: "rollouts/", wantErr: true},
		{in: "rollouts/a/b", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseRolloutID(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseRolloutID(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestRolloutTargetFilter(t *testing.T) {
	tests := []struct {
		name    string
		target  rolloutTarget
		want    string
		wantErr string
	}{
		{name: "nothing", want: ""},
		{name: "site", target: rolloutTarget{site: "north"}, want: `site = "north"`},
		{
			name:   "every flag, in a fixed order, then --filter",
			target: rolloutTarget{raw: ` serial != "SN-1" `, fromVersion: "2.4.1", site: "north", labels: labelsFlag{{"unit", "4-west"}, {"floor", "4"}}},
			want:   `site = "north" AND labels.unit = "4-west" AND labels.floor = "4" AND firmware_version = "2.4.1" AND serial != "SN-1"`,
		},
		{name: "raw only", target: rolloutTarget{raw: `labels.unit = "icu"`}, want: `labels.unit = "icu"`},
		{name: "quotes escaped", target: rolloutTarget{site: `north "A"`}, want: `site = "north \"A\""`},
		{name: "version with a space", target: rolloutTarget{fromVersion: "SW 04.05"}, want: `firmware_version = "SW 04.05"`},
		{name: "label twice", target: rolloutTarget{labels: labelsFlag{{"unit", "a"}, {"unit", "b"}}}, wantErr: `--label: key "unit" given twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.target.filter()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("filter() = %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("filter() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseWindow(t *testing.T) {
	tests := []struct {
		in      string
		want    *medfleetv1.MaintenanceWindow
		wantErr string
	}{
		{
			in: "sites=north;tz=Europe/Paris;days=sat,sun;start=23:00;duration=3h",
			want: &medfleetv1.MaintenanceWindow{Sites: []string{"north"}, TimeZone: "Europe/Paris", Days: []string{"sat", "sun"},
				Start: "23:00", Duration: durationpb.New(3 * time.Hour)},
		},
		{
			in:   "start=02:00;duration=90m",
			want: &medfleetv1.MaintenanceWindow{Start: "02:00", Duration: durationpb.New(90 * time.Minute)},
		},
		{
			in: " sites = north, south ; days=Mon-Fri ; start=2:30 ; duration=24h ; ",
			want: &medfleetv1.MaintenanceWindow{Sites: []string{"north", "south"}, Days: []string{"mon", "tue", "wed", "thu", "fri"},
				Start: "02:30", Duration: durationpb.New(24 * time.Hour)},
		},
		{
			in:   "days=fri-mon;time_zone=UTC;start=22:00;duration=8h;site=icu",
			want: &medfleetv1.MaintenanceWindow{Sites: []string{"icu"}, TimeZone: "UTC", Days: []string{"mon", "fri", "sat", "sun"}, Start: "22:00", Duration: durationpb.New(8 * time.Hour)},
		},
		{in: "duration=3h", wantErr: "start: required"},
		{in: "start=23:00", wantErr: "duration: required"},
		{in: "start=25:00;duration=3h", wantErr: `start: "25:00" is not a local time HH:MM`},
		{in: "start=23:00;duration=25h", wantErr: `duration: "25h" is not a duration from 1m to 24h`},
		{in: "start=23:00;duration=30s", wantErr: "duration: "},
		{in: "start=23:00;duration=3h;days=sat,sunday", wantErr: `days: "sunday" is not a day`},
		{in: "start=23:00;duration=3h;days=mon-", wantErr: `days: "" is not a day`},
		{in: "start=23:00;duration=3h;colour=red", wantErr: "colour: unknown key"},
		{in: "start=23:00;duration=3h;start=01:00", wantErr: "start: given twice"},
		{in: "start=23:00;duration", wantErr: `"duration": want key=value`},
		{in: "", wantErr: "start: required"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseWindow(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseWindow(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseWindow(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("parseWindow(%q) mismatch (-want +got):\n%s", tc.in, diff)
			}
			// What "rollout get" prints parses back to the same window.
			again, err := parseWindow(formatWindow(got))
			if err != nil {
				t.Fatalf("parseWindow(formatWindow(%v) = %q): %v", got, formatWindow(got), err)
			}
			if diff := cmp.Diff(got, again, protocmp.Transform()); diff != "" {
				t.Errorf("parseWindow(formatWindow()) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFormatWindow(t *testing.T) {
	w := &medfleetv1.MaintenanceWindow{Sites: []string{"north", "south"}, TimeZone: "Europe/Paris", Days: []string{"sat", "sun"},
		Start: "23:00", Duration: durationpb.New(3*time.Hour + 30*time.Minute)}
	if got, want := formatWindow(w), "sites=north,south;tz=Europe/Paris;days=sat,sun;start=23:00;duration=3h30m"; got != want {
		t.Errorf("formatWindow() = %q, want %q", got, want)
	}
}

func TestShortDuration(t *testing.T) {
	tests := map[time.Duration]string{
		8 * time.Hour:                    "8h",
		90 * time.Minute:                 "1h30m",
		30 * time.Minute:                 "30m",
		90 * time.Second:                 "1m30s",
		45 * time.Second:                 "45s",
		24*time.Hour + 30*time.Second:    "24h0m30s",
		0:                                "0s",
		1500 * time.Millisecond:          "1.5s",
		720*time.Hour + 10*time.Minute:   "720h10m",
		2*time.Hour + 5*time.Millisecond: "2h0m0.005s",
	}
	for d, want := range tests {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParsePercents(t *testing.T) {
	tests := []struct {
		in      string
		want    []float64
		wantErr string
	}{
		{in: "25,100", want: []float64{25, 100}},
		{in: "100", want: []float64{100}},
		{in: "10%, 50%, 100%", want: []float64{10, 50, 100}},
		{in: "0.5,100", want: []float64{0.5, 100}},
		{in: "25,50", wantErr: "the last wave must be 100"},
		{in: "50,25,100", wantErr: "25 must be above the previous wave's (50)"},
		{in: "25,25,100", wantErr: "25 must be above"},
		{in: "0,100", wantErr: "0 must be above"},
		{in: "25,150", wantErr: "150 must be above the previous wave's (25) and at most 100"},
		{in: "quarter,100", wantErr: `"quarter" is not a percentage`},
		{in: "", wantErr: `"" is not a percentage`},
	}
	for _, tc := range tests {
		got, err := parsePercents(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "--waves: ") {
				t.Errorf("parsePercents(%q) = %v, %v; want error --waves: ...%s", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !cmp.Equal(got, tc.want) {
			t.Errorf("parsePercents(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{in: "10/min", want: 10},
		{in: "10", want: 10},
		{in: "0.5/min", want: 0.5},
		{in: "120/h", want: 2},
		{in: "0", want: 0},
		{in: "-1/min", wantErr: true},
		{in: "10/s", wantErr: true},
		{in: "fast", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseRate(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestBuildWaves(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	f64 := func(v float64) *float64 { return &v }
	dur := func(v time.Duration) *time.Duration { return &v }
	soak8h, soak1h := durationpb.New(8*time.Hour), durationpb.New(time.Hour)
	tests := []struct {
		name    string
		spec    waveSpec
		want    []*medfleetv1.Wave
		wantErr string
	}{
		{name: "no flags: the server's defaults", spec: waveSpec{}, want: nil},
		{
			name: "canary only: the default percentages and soak",
			spec: waveSpec{canary: i32(5)},
			want: []*medfleetv1.Wave{
				{Devices: 5, Soak: soak8h},
				{CumulativePercent: 25, Soak: soak8h},
				{CumulativePercent: 100},
			},
		},
		{
			name: "no canary",
			spec: waveSpec{canary: i32(0), percents: []float64{10, 50, 100}},
			want: []*medfleetv1.Wave{
				{CumulativePercent: 10, Soak: soak8h},
				{CumulativePercent: 50, Soak: soak8h},
				{CumulativePercent: 100},
			},
		},
		{
			name: "thresholds for the percentage waves, not the canary",
			spec: waveSpec{canary: i32(1), percents: []float64{50, 100}, soak: dur(time.Hour), success: f64(90), errorPct: f64(10), minFinished: i32(2)},
			want: []*medfleetv1.Wave{
				{Devices: 1, Soak: soak1h},
				{CumulativePercent: 50, Soak: soak1h, SuccessPercent: 90, ErrorPercent: 10, MinFinished: 2},
				{CumulativePercent: 100, SuccessPercent: 90, ErrorPercent: 10, MinFinished: 2},
			},
		},
		{
			name: "no soak",
			spec: waveSpec{soak: dur(0)},
			want: []*medfleetv1.Wave{{Devices: 3}, {CumulativePercent: 25}, {CumulativePercent: 100}},
		},
		{
			name: "one wave of everyone",
			spec: waveSpec{canary: i32(0), percents: []float64{100}},
			want: []*medfleetv1.Wave{{CumulativePercent: 100}},
		},
		{
			name: "zero error tolerance after 5",
			spec: waveSpec{errorPct: f64(0), minFinished: i32(5)},
			want: []*medfleetv1.Wave{
				{Devices: 3, Soak: soak8h},
				{CumulativePercent: 25, Soak: soak8h, MinFinished: 5},
				{CumulativePercent: 100, MinFinished: 5},
			},
		},
		{name: "negative canary", spec: waveSpec{canary: i32(-1)}, wantErr: "--canary: must not be negative"},
		{name: "error alone", spec: waveSpec{errorPct: f64(2)}, wantErr: "--error and --min-finished go together"},
		{name: "min finished alone", spec: waveSpec{minFinished: i32(20)}, wantErr: "--error and --min-finished go together"},
		{name: "zero min finished", spec: waveSpec{errorPct: f64(2), minFinished: i32(0)}, wantErr: "--min-finished: want at least 1"},
		{name: "zero success", spec: waveSpec{success: f64(0)}, wantErr: "--success: want a percentage above 0"},
		{name: "success above 100", spec: waveSpec{success: f64(101)}, wantErr: "--success: "},
		{name: "error above 100", spec: waveSpec{errorPct: f64(120), minFinished: i32(1)}, wantErr: "--error: "},
		{name: "negative soak", spec: waveSpec{soak: dur(-time.Hour)}, wantErr: "--soak: must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := buildWaves(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("buildWaves() = %v, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("buildWaves() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRolloutCreateFlags checks the rollout that the flags of "rollout
// create" build: the fields of flags not given stay unset.
func TestRolloutCreateFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    *medfleetv1.Rollout
		wantErr string
	}{
		{name: "nothing but the artifact: every default the server's", args: nil, want: &medfleetv1.Rollout{}},
		{
			name: "target and description",
			args: []string{"--site", "north", "--label", "unit=4-west", "--from-version", "2.4.1", "--description", "FSN-2026-004"},
			want: &medfleetv1.Rollout{Description: "FSN-2026-004", Target: &medfleetv1.RolloutTarget{
				Filter: `site = "north" AND labels.unit = "4-west" AND firmware_version = "2.4.1"`,
			}},
		},
		{
			name: "waves",
			args: []string{"--canary", "0", "--waves", "50,100", "--success", "90"},
			want: &medfleetv1.Rollout{Waves: []*medfleetv1.Wave{
				{CumulativePercent: 50, SuccessPercent: 90, Soak: durationpb.New(8 * time.Hour)},
				{CumulativePercent: 100, SuccessPercent: 90},
			}},
		},
		{
			name: "soak in days",
			args: []string{"--soak", "2d"},
			want: &medfleetv1.Rollout{Waves: []*medfleetv1.Wave{
				{Devices: 3, Soak: durationpb.New(48 * time.Hour)},
				{CumulativePercent: 25, Soak: durationpb.New(48 * time.Hour)},
				{CumulativePercent: 100},
			}},
		},
		{name: "rate", args: []string{"--rate", "10/min"}, want: &medfleetv1.Rollout{Rate: &medfleetv1.RolloutRate{PerMinute: 10}}},
		{
			name: "exponential rate",
			args: []string{"--rate", "5", "--rate-factor", "2", "--rate-every", "10", "--rate-max", "100"},
			want: &medfleetv1.Rollout{Rate: &medfleetv1.RolloutRate{PerMinute: 5, IncrementFactor: 2, IncreaseEvery: 10, MaxPerMinute: 100}},
		},
		{
			name: "timeout, retries, windows",
			args: []string{"--device-timeout", "12h", "--retries", "0", "--window", "start=23:00;duration=3h", "--window", "sites=icu;start=02:00;duration=1h"},
			want: &medfleetv1.Rollout{DeviceTimeout: durationpb.New(12 * time.Hour), MaxRetries: proto.Int32(0), Windows: []*medfleetv1.MaintenanceWindow{
				{Start: "23:00", Duration: durationpb.New(3 * time.Hour)},
				{Sites: []string{"icu"}, Start: "02:00", Duration: durationpb.New(time.Hour)},
			}},
		},
		{name: "rate factor without rate", args: []string{"--rate-factor", "2"}, wantErr: "need --rate"},
		{name: "rate every without factor", args: []string{"--rate", "5", "--rate-every", "10"}, wantErr: "need --rate-factor"},
		{name: "rate factor out of range", args: []string{"--rate", "5", "--rate-factor", "10", "--rate-every", "1"}, wantErr: "--rate-factor: want 1.1 to 5"},
		{name: "rate factor without every", args: []string{"--rate", "5", "--rate-factor", "2"}, wantErr: "--rate-every: required"},
		{name: "bad rate", args: []string{"--rate", "lots"}, wantErr: "--rate: want devices per minute"},
		{name: "zero device timeout", args: []string{"--device-timeout", "0s"}, wantErr: "--device-timeout: must be positive"},
		{name: "negative retries", args: []string{"--retries", "-1"}, wantErr: "--retries: must not be negative"},
		{name: "bad window", args: []string{"--window", "start=23:00"}, wantErr: `--window "start=23:00": duration: required`},
		{name: "bad waves", args: []string{"--waves", "25,50"}, wantErr: "--waves: the last wave must be 100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f rolloutCreateFlags
			cmd := &cobra.Command{Use: "create"}
			f.add(cmd)
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := f.rollout(cmd)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("flags %q: rollout() = %v, %v; want error %q", tc.args, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("flags %q: rollout() mismatch (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestResultWord(t *testing.T) {
	tests := map[int32]string{0: "-", 1: "1 success", 5: "5 integrity", 8: "8 update failed", 11: "11 deferred", 42: "42"}
	for r, want := range tests {
		if got := resultWord(r); got != want {
			t.Errorf("resultWord(%d) = %q, want %q", r, got, want)
		}
	}
	for r := range int32(12) {
		if m := resultMeaning(r); m == "unknown result" || !strings.Contains(m, ": ") {
			t.Errorf("resultMeaning(%d) = %q, want a name and a meaning", r, m)
		}
	}
}

// testRollout is a rollout paused by its error threshold in its second
// wave, with more history than "rollout get" shows.
func testRollout() *medfleetv1.Rollout {
	at := func(d time.Duration) *medfleetv1.RolloutEvent {
		return &medfleetv1.RolloutEvent{Time: ts(testNow.Add(-d)), State: medfleetv1.RolloutState_ROLLOUT_STATE_RUNNING}
	}
	r := &medfleetv1.Rollout{
		Name:     "rollouts/pumps-2-5-0",
		Artifact: "artifacts/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Version:  "2.5.0",
		Target:   &medfleetv1.RolloutTarget{Filter: `site = "north"`},
		Waves: []*medfleetv1.Wave{
			{Devices: 2, SuccessPercent: 100, MinFinished: 1, Soak: durationpb.New(8 * time.Hour), State: medfleetv1.WaveState_WAVE_STATE_SUCCEEDED,
				Counts: &medfleetv1.ExecutionCounts{Total: 2, Succeeded: 2}, StartTime: ts(testNow.Add(-30 * time.Hour))},
			{CumulativePercent: 25, SuccessPercent: 95, ErrorPercent: 2, MinFinished: 20, Soak: durationpb.New(8 * time.Hour),
				State: medfleetv1.WaveState_WAVE_STATE_FAILED, StartTime: ts(testNow.Add(-20 * time.Hour)),
				Counts: &medfleetv1.ExecutionCounts{Total: 28, Notified: 1, Downloading: 1, Downloaded: 2, Deferred: 1, Installing: 1, Succeeded: 18, Failed: 2, TimedOut: 1, Skipped: 1}},
			{CumulativePercent: 100, SuccessPercent: 95, ErrorPercent: 2, MinFinished: 20, State: medfleetv1.WaveState_WAVE_STATE_PENDING,
				Counts: &medfleetv1.ExecutionCounts{Total: 90, Queued: 90}},
		},
		Rate:          &medfleetv1.RolloutRate{PerMinute: 10, IncrementFactor: 1.5, IncreaseEvery: 20, MaxPerMinute: 100},
		DeviceTimeout: durationpb.New(24 * time.Hour),
		MaxRetries:    proto.Int32(2),
		Windows: []*medfleetv1.MaintenanceWindow{{Sites: []string{"north"}, TimeZone: "Europe/Paris", Days: []string{"sat", "sun"},
			Start: "23:00", Duration: durationpb.New(3 * time.Hour)}},
		Description: "occlusion alarm latency\nfix",
		State:       medfleetv1.RolloutState_ROLLOUT_STATE_PAUSED,
		PauseReason: medfleetv1.PauseReason_PAUSE_REASON_ERROR_THRESHOLD,
		PauseDetail: "wave 2: 3 of 21 finished devices failed (threshold 2 % after 20)",
		CurrentWave: 1,
		Counts: &medfleetv1.ExecutionCounts{Total: 120, Queued: 90, Notified: 1, Downloading: 1, Downloaded: 2, Deferred: 1, Installing: 1,
			Succeeded: 20, Failed: 2, TimedOut: 1, Skipped: 1},
		FailuresByResult: map[int32]int32{8: 1, 5: 1},
		Creator:          "users/alice",
		CreateTime:       ts(testNow.Add(-30 * time.Hour)),
		UpdateTime:       ts(testNow.Add(-10 * time.Minute)),
		Etag:             "912",
	}
	r.History = append(r.History, &medfleetv1.RolloutEvent{Time: ts(testNow.Add(-30 * time.Hour)), State: medfleetv1.RolloutState_ROLLOUT_STATE_RUNNING,
		Detail: "created by users/alice for 120 devices; wave 1 started"})
	for i := range 10 {
		e := at(time.Duration(29-i) * time.Hour)
		e.Detail = fmt.Sprintf("event %d", i+1)
		r.History = append(r.History, e)
	}
	r.History = append(r.History, &medfleetv1.RolloutEvent{Time: ts(testNow.Add(-10 * time.Minute)), State: medfleetv1.RolloutState_ROLLOUT_STATE_PAUSED,
		PauseReason: medfleetv1.PauseReason_PAUSE_REASON_ERROR_THRESHOLD, Detail: r.PauseDetail})
	return r
}

func TestRolloutOutput(t *testing.T) {
	dryRun := &medfleetv1.Rollout{
		Name: "rollouts/x7k2m9q4p1", Artifact: "artifacts/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Version: "2.5.0",
		Waves: []*medfleetv1.Wave{
			{Devices: 3, SuccessPercent: 100, MinFinished: 1, Soak: durationpb.New(8 * time.Hour), Counts: &medfleetv1.ExecutionCounts{Total: 3}},
			{CumulativePercent: 25, SuccessPercent: 95, ErrorPercent: 2, MinFinished: 20, Soak: durationpb.New(8 * time.Hour), Counts: &medfleetv1.ExecutionCounts{Total: 0}},
			{CumulativePercent: 100, SuccessPercent: 95, ErrorPercent: 2, MinFinished: 20, Counts: &medfleetv1.ExecutionCounts{Total: 2, Skipped: 1}},
		},
		DeviceTimeout: durationpb.New(24 * time.Hour),
		Counts:        &medfleetv1.ExecutionCounts{Total: 5, Queued: 4, Skipped: 1},
	}
	devices := []*medfleetv1.RolloutDevice{
		{Device: "pump-0001", Wave: 0, State: medfleetv1.ExecutionState_EXECUTION_STATE_SUCCEEDED, Result: 1, Attempts: 1, FromVersion: "2.4.1",
			UpdateTime: ts(testNow.Add(-26 * time.Hour)), Detail: "registered running 2.5.0"},
		{Device: "pump-0007", Wave: 1, State: medfleetv1.ExecutionState_EXECUTION_STATE_FAILED, Result: 5, Attempts: 1, FromVersion: "2.4.1",
			UpdateTime: ts(testNow.Add(-2 * time.Hour)), Detail: "result 5: integrity check failed (hash, size or signature)"},
		{Device: "pump-0042", Wave: 2, State: medfleetv1.ExecutionState_EXECUTION_STATE_QUEUED, FromVersion: "2.3.0"},
	}
	list := []*medfleetv1.Rollout{testRollout(), {
		Name: "rollouts/cpap-04-06", Version: "04.06", State: medfleetv1.RolloutState_ROLLOUT_STATE_COMPLETED, CurrentWave: 2,
		Waves: make([]*medfleetv1.Wave, 3), Counts: &medfleetv1.ExecutionCounts{Total: 40, Succeeded: 39, TimedOut: 1},
		CreateTime: ts(testNow.Add(-9 * 24 * time.Hour)),
	}}
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
		want  string
	}{
		{
			name:  "get",
			write: func(b *bytes.Buffer) error { return writeRollout(b, testRollout(), testNow) },
			want: `name:           rollouts/pumps-2-5-0
state:          paused (error threshold): wave 2: 3 of 21 finished devices failed (threshold 2 % after 20)
version:        2.5.0
artifact:       artifacts/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
target:         site = "north"
description:    occlusion alarm latency fix
current wave:   2 of 3
rate:           10/min, x1.5 every 20 succeeded, up to 100/min
device timeout: 24h
retries:        2
windows:        sites=north;tz=Europe/Paris;days=sat,sun;start=23:00;duration=3h
created:        2026-02-28T06:00:00Z (30h ago) by users/alice
updated:        2026-03-01T11:50:00Z (10m ago)
etag:           912

waves:
  WAVE  SIZE       DEVICES  SUCCESS  PAUSES ON                   SOAK  STATE      STARTED
  1     2 devices  2        100%     first failure               8h    succeeded  30h ago
  2     to 25%     28       95%      >2% failed of 20+ finished  8h    failed     20h ago
  3     to 100%    90       95%      >2% failed of 20+ finished  -     pending    -

devices:
  WAVE   DEVICES  QUEUED  NOTIFIED  DOWNLOADING  DOWNLOADED  DEFERRED  INSTALLING  SUCCEEDED  FAILED  TIMED_OUT  CANCELED  SKIPPED
  1      2        0       0         0            0           0         0           2          0       0          0         0
  2      28       0       1         1            2           1         1           18         2       1          0         1
  3      90       90      0         0            0           0         0           0          0       0          0         0
  total  120      90      1         1            2           1         1           20         2       1          0         1

failures by result:
    5  1 device    integrity: SHA-256, size or signature check failed
    8  1 device    update failed: the install or the self-test failed; the previous image runs again

history (last 10 of 12 events):
  2026-02-28T08:00:00Z  running                   event 2
  2026-02-28T09:00:00Z  running                   event 3
  2026-02-28T10:00:00Z  running                   event 4
  2026-02-28T11:00:00Z  running                   event 5
  2026-02-28T12:00:00Z  running                   event 6
  2026-02-28T13:00:00Z  running                   event 7
  2026-02-28T14:00:00Z  running                   event 8
  2026-02-28T15:00:00Z  running                   event 9
  2026-02-28T16:00:00Z  running                   event 10
  2026-03-01T11:50:00Z  paused (error threshold)  wave 2: 3 of 21 finished devices failed (threshold 2 % after 20)
`,
		},
		{
			name:  "dry run",
			write: func(b *bytes.Buffer) error { return writeDryRun(b, dryRun) },
			want: `dry run: the rollout would take 5 devices (1 already at 2.5.0, skipped); nothing was created

artifact:       artifacts/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
version:        2.5.0
target:         every device of the artifact's models
rate:           no limit
device timeout: 24h
retries:        0

waves:
  WAVE  SIZE       DEVICES  SUCCESS  PAUSES ON                   SOAK
  1     3 devices  3        100%     first failure               8h
  2     to 25%     0        95%      >2% failed of 20+ finished  8h
  3     to 100%    2        95%      >2% failed of 20+ finished  -
`,
		},
		{
			name:  "list",
			write: func(b *bytes.Buffer) error { return writeRolloutTable(b, list, testNow) },
			want: `ID           VERSION  STATE                     WAVE  DEVICES  SUCCEEDED  FAILED  CREATED
pumps-2-5-0  2.5.0    paused (error threshold)  2/3   120      20         3       30h ago
cpap-04-06   04.06    completed                 3/3   40       39         1       9d ago
2 rollouts
`,
		},
		{
			name:  "no rollouts",
			write: func(b *bytes.Buffer) error { return writeRolloutTable(b, nil, testNow) },
			want:  "0 rollouts\n",
		},
		{
			name:  "devices",
			write: func(b *bytes.Buffer) error { return writeRolloutDeviceTable(b, devices, testNow) },
			want: `DEVICE     WAVE  STATE      RESULT       ATTEMPTS  FROM   UPDATED  DETAIL
pump-0001  1     succeeded  1 success    1         2.4.1  26h ago  registered running 2.5.0
pump-0007  2     failed     5 integrity  1         2.4.1  2h ago   result 5: integrity check failed (hash, size or signature)
pump-0042  3     queued     -            0         2.3.0  never    -
3 devices
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRolloutServer uploads an image to a real server, creates devices of
// its model, and takes a rollout through dry run, creation, pause, resume
// and abort.
func TestRolloutServer(t *testing.T) {
	dir := t.TempDir()
	key, pub := testKey(t, dir)
	s := startFirmwareServer(t, pub)
	image, sha := testImage(t, dir, "pump-2.5.0.bin", 3000)
	a := uploadImage(t, s, key, image, testFirmwareModel, "2.5.0")
	if a.GetSha256() != sha {
		t.Fatalf("upload: sha256 %s, want %s", a.GetSha256(), sha)
	}
	for i := 1; i <= 4; i++ {
		s.mustRun(t, "device", "create", fmt.Sprintf("pump-%04d", i), "--profile", "infusion-pump", "--model", testFirmwareModel,
			"--site", "north", "--label", "unit=4-west")
	}
	s.mustRun(t, "device", "create", "pump-0005", "--profile", "infusion-pump", "--model", testFirmwareModel, "--site", "south")
	s.mustRun(t, "device", "create", "cpap-0001", "--profile", "cpap", "--model", "AirSense 11", "--site", "north")

	// A dry run counts the devices and creates nothing.
	out := s.mustRun(t, "rollout", "create", "--artifact", sha[:12], "--site", "north", "--dry-run")
	if !strings.HasPrefix(out, "dry run: the rollout would take 4 devices; nothing was created\n") {
		t.Errorf("rollout create --dry-run =\n%s\nwant it to take 4 devices", out)
	}
	if got := keyValue(t, out, "target"); got != `site = "north"` {
		t.Errorf("rollout create --dry-run: target %q, want site = \"north\"", got)
	}
	var dry medfleetv1.Rollout
	s.mustJSON(t, &dry, "rollout", "create", "--artifact", "artifacts/"+sha, "--dry-run")
	if dry.GetCounts().GetTotal() != 5 || len(dry.GetWaves()) != 3 || dry.GetWaves()[0].GetDevices() != 3 {
		t.Errorf("rollout create --dry-run -o json = %v, want 5 devices in the server's 3 default waves", &dry)
	}
	if got := s.mustRun(t, "rollout", "list"); got != "0 rollouts\n" {
		t.Errorf("rollout list after dry runs = %q, want 0 rollouts", got)
	}
	// A filter that matches nothing: the server says which field.
	code, _, stderr := s.run(t, "rollout", "create", "--artifact", sha, "--site", "east", "--dry-run")
	if code != exitInvalidArgument || !strings.Contains(stderr, "rollout.target") {
		t.Errorf("rollout create for no device = %d, %q; want %d naming rollout.target", code, stderr, exitInvalidArgument)
	}

	// Create, with every kind of setting.
	var r medfleetv1.Rollout
	s.mustJSON(t, &r, "rollout", "create", "--artifact", sha, "--id", "pumps-2-5-0", "--site", "north", "--label", "unit=4-west",
		"--canary", "1", "--waves", "50,100", "--soak", "1h", "--success", "90", "--error", "10", "--min-finished", "2",
		"--rate", "10/min", "--device-timeout", "12h", "--retries", "3", "--description", "occlusion alarm latency",
		"--window", "sites=north;tz=Europe/Paris;days=sat,sun;start=23:00;duration=3h")
	soak := durationpb.New(time.Hour)
	want := &medfleetv1.Rollout{
		Name: "rollouts/pumps-2-5-0", Artifact: "artifacts/" + sha, Version: "2.5.0",
		Target: &medfleetv1.RolloutTarget{Filter: `site = "north" AND labels.unit = "4-west"`},
		Waves: []*medfleetv1.Wave{
			{Devices: 1, Soak: soak, SuccessPercent: 100, MinFinished: 1},
			{CumulativePercent: 50, Soak: soak, SuccessPercent: 90, ErrorPercent: 10, MinFinished: 2},
			{CumulativePercent: 100, SuccessPercent: 90, ErrorPercent: 10, MinFinished: 2},
		},
		Rate: &medfleetv1.RolloutRate{PerMinute: 10}, DeviceTimeout: durationpb.New(12 * time.Hour), MaxRetries: proto.Int32(3),
		Windows: []*medfleetv1.MaintenanceWindow{{Sites: []string{"north"}, TimeZone: "Europe/Paris", Days: []string{"sat", "sun"},
			Start: "23:00", Duration: durationpb.New(3 * time.Hour)}},
		Description: "occlusion alarm latency",
		State:       medfleetv1.RolloutState_ROLLOUT_STATE_RUNNING,
	}
	settings := protocmp.IgnoreFields(&medfleetv1.Rollout{},
		"counts", "failures_by_result", "creator", "create_time", "update_time", "history", "etag", "traceparent", "current_wave")
	waveOutput := protocmp.IgnoreFields(&medfleetv1.Wave{}, "state", "counts", "start_time")
	if diff := cmp.Diff(want, &r, protocmp.Transform(), settings, waveOutput); diff != "" {
		t.Errorf("rollout create mismatch (-want +got):\n%s", diff)
	}
	if r.GetCounts().GetTotal() != 4 {
		t.Errorf("rollout create: %d devices, want 4", r.GetCounts().GetTotal())
	}

	// The devices are taken: another rollout of them is refused.
	code, _, stderr = s.run(t, "rollout", "create", "--artifact", sha, "--site", "north")
	if code != exitFailedPrecondition || !strings.Contains(stderr, "rollouts/pumps-2-5-0") {
		t.Errorf("a second rollout of the same devices = %d, %q; want %d naming rollouts/pumps-2-5-0", code, stderr, exitFailedPrecondition)
	}
	code, _, stderr = s.run(t, "rollout", "create", "--artifact", sha, "--id", "pumps-2-5-0", "--site", "south")
	if code != exitAlreadyExists {
		t.Errorf("a second rollout with the same id = %d, %q; want %d", code, stderr, exitAlreadyExists)
	}
	// And the image cannot be deleted while the rollout runs.
	code, _, stderr = s.run(t, "firmware", "delete", sha)
	if code != exitFailedPrecondition || !strings.Contains(stderr, "rollouts/pumps-2-5-0") {
		t.Errorf("firmware delete of an image in use = %d, %q; want %d naming the rollout", code, stderr, exitFailedPrecondition)
	}

	// The human view: state, settings, the waves, the history.
	out = s.mustRun(t, "rollout", "get", "rollouts/pumps-2-5-0")
	for key, want := range map[string]string{
		"state": "running", "version": "2.5.0", "current wave": "1 of 3", "rate": "10/min", "device timeout": "12h", "retries": "3",
		"windows": "sites=north;tz=Europe/Paris;days=sat,sun;start=23:00;duration=3h",
	} {
		if got := keyValue(t, out, key); got != want {
			t.Errorf("rollout get: %s %q, want %q", key, got, want)
		}
	}
	for _, want := range []string{
		"\nwaves:\n", "\ndevices:\n", "\nfailures by result: none\n", "\nhistory:\n",
		"created by users/admin for 4 devices; wave 1 started",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rollout get output lacks %q:\n%s", want, out)
		}
	}
	for _, row := range [][]string{
		{"1", "1", "device", "1", "100%", "first", "failure", "1h", "running"},
		{"2", "to", "50%", "1", "90%", ">10%", "failed", "of", "2+", "finished", "1h", "pending", "-"},
		{"3", "to", "100%", "2", "90%", ">10%", "failed", "of", "2+", "finished", "-", "pending", "-"},
	} {
		if !hasRow(out, row) {
			t.Errorf("rollout get output lacks the wave row %q:\n%s", row, out)
		}
	}

	// devices: all, by wave (numbered from 1), by state.
	var devs medfleetv1.ListRolloutDevicesResponse
	s.mustJSON(t, &devs, "rollout", "devices", "pumps-2-5-0")
	if len(devs.GetDevices()) != 4 {
		t.Errorf("rollout devices = %v, want 4 devices", &devs)
	}
	perWave := map[int32]int{}
	for _, d := range devs.GetDevices() {
		perWave[d.GetWave()]++
	}
	for wave, n := range []int{1, 1, 2} {
		out := s.mustRun(t, "rollout", "devices", "pumps-2-5-0", "--wave", fmt.Sprint(wave+1))
		if perWave[int32(wave)] != n || !strings.HasSuffix(out, "\n"+countNoun(n, "device")+"\n") {
			t.Errorf("rollout devices --wave %d =\n%s\nwant %d (-o json: %d)", wave+1, out, n, perWave[int32(wave)])
		}
	}
	if got := s.mustRun(t, "rollout", "devices", "pumps-2-5-0", "--state", "failed"); got != "0 devices\n" {
		t.Errorf("rollout devices --state failed = %q, want 0 devices", got)
	}

	// pause, resume, abort.
	if code, _, stderr := s.run(t, "rollout", "pause", "pumps-2-5-0", "--reason", "night shift", "--etag", "1"); code != exitFailedPrecondition {
		t.Errorf("rollout pause with a stale etag = %d, %q; want %d", code, stderr, exitFailedPrecondition)
	}
	out = s.mustRun(t, "rollout", "pause", "pumps-2-5-0", "--reason", "night shift")
	if got := keyValue(t, out, "state"); got != "paused (manual): paused by users/admin: night shift" {
		t.Errorf("rollout pause: state %q, want paused (manual): paused by users/admin: night shift", got)
	}
	list := s.mustRun(t, "rollout", "list", "--state", "paused")
	if lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n"); len(lines) != 3 || !hasRow(lines[1], []string{"pumps-2-5-0", "2.5.0", "paused", "(manual)", "1/3", "4"}) || lines[2] != "1 rollout" {
		t.Errorf("rollout list --state paused =\n%s\nwant pumps-2-5-0, paused", list)
	}
	if got := s.mustRun(t, "rollout", "list", "--state", "running"); got != "0 rollouts\n" {
		t.Errorf("rollout list --state running while paused = %q, want 0 rollouts", got)
	}
	out = s.mustRun(t, "rollout", "resume", "rollouts/pumps-2-5-0")
	if got := keyValue(t, out, "state"); got != "running" {
		t.Errorf("rollout resume: state %q, want running", got)
	}
	if code, _, stderr := s.run(t, "rollout", "resume", "pumps-2-5-0"); code != exitFailedPrecondition || !strings.Contains(stderr, "not paused") {
		t.Errorf("rollout resume of a running rollout = %d, %q; want %d, not paused", code, stderr, exitFailedPrecondition)
	}
	var aborted medfleetv1.Rollout
	s.mustJSON(t, &aborted, "rollout", "abort", "pumps-2-5-0", "--reason", "recall FSN-2026-004")
	if aborted.GetState() != medfleetv1.RolloutState_ROLLOUT_STATE_ABORTED || aborted.GetEndTime() == nil {
		t.Errorf("rollout abort = %v, want aborted with an end time", &aborted)
	}
	for _, args := range [][]string{
		{"rollout", "pause", "pumps-2-5-0", "--reason", "x"},
		{"rollout", "resume", "pumps-2-5-0"},
		{"rollout", "abort", "pumps-2-5-0", "--reason", "x"},
	} {
		if code, _, stderr := s.run(t, args...); code != exitFailedPrecondition {
			t.Errorf("%q of an aborted rollout = %d, %q; want %d", args, code, stderr, exitFailedPrecondition)
		}
	}
	out = s.mustRun(t, "rollout", "get", "pumps-2-5-0")
	for _, want := range []string{"paused by users/admin: night shift", "resumed by users/admin", "aborted by users/admin: recall FSN-2026-004", "\nended: "} {
		if !strings.Contains(out, want) {
			t.Errorf("rollout get after abort lacks %q:\n%s", want, out)
		}
	}
	var all medfleetv1.ListRolloutsResponse
	s.mustJSON(t, &all, "rollout", "list")
	if len(all.GetRollouts()) != 1 || all.GetRollouts()[0].GetState() != medfleetv1.RolloutState_ROLLOUT_STATE_ABORTED {
		t.Errorf("rollout list -o json = %v, want the aborted rollout", &all)
	}
	if code, _, _ := s.run(t, "rollout", "get", "absent"); code != exitNotFound {
		t.Errorf("rollout get absent = %d, want %d", code, exitNotFound)
	}
}

// hasRow reports whether a line of out starts with the fields row.
func hasRow(out string, row []string) bool {
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) >= len(row) && slices.Equal(f[:len(row)], row) {
			return true
		}
	}
	return false
}

// TestRolloutUsageErrors checks bad rollout command lines: exit 2 before
// any RPC.
func TestRolloutUsageErrors(t *testing.T) {
	sha := strings.Repeat("9f86d081", 8)
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"noun without verb", []string{"rollout"}, "rollout: missing command, one of: abort, create, devices, get, list, pause, resume"},
		{"create without artifact", []string{"rollout", "create"}, "--artifact: required"},
		{"create bad artifact", []string{"rollout", "create", "--artifact", "pump.bin"}, `--artifact: artifact "pump.bin"`},
		{"create bad id", []string{"rollout", "create", "--artifact", sha, "--id", "Pumps_2"}, `--id: rollout id "Pumps_2"`},
		{"create bad waves", []string{"rollout", "create", "--artifact", sha, "--waves", "25,50"}, "--waves: the last wave must be 100"},
		{"create error alone", []string{"rollout", "create", "--artifact", sha, "--error", "5"}, "--error and --min-finished go together"},
		{"create bad window", []string{"rollout", "create", "--artifact", sha, "--window", "days=sat;start=23:00"}, "duration: required"},
		{"create bad soak", []string{"rollout", "create", "--artifact", sha, "--soak", "a while"}, `invalid argument "a while" for "--soak" flag`},
		{"create label twice", []string{"rollout", "create", "--artifact", sha, "--label", "a=1", "--label", "a=2"}, `--label: key "a" given twice`},
		{"create with argument", []string{"rollout", "create", sha}, "rollout create: want no arguments"},
		{"get bad id", []string{"rollout", "get", "Pumps"}, `rollout id "Pumps"`},
		{"list bad state", []string{"rollout", "list", "--state", "done"}, `--state: want running, paused, completed or aborted, got "done"`},
		{"devices bad state", []string{"rollout", "devices", "r1", "--state", "broken"}, `--state: want one of canceled, deferred, downloaded`},
		{"devices wave 0", []string{"rollout", "devices", "r1", "--wave", "0"}, "--wave: waves are numbered from 1, got 0"},
		{"pause without reason", []string{"rollout", "pause", "r1"}, "--reason: required"},
		{"abort without reason", []string{"rollout", "abort", "r1", "--reason", " "}, "--reason: required"},
		{"resume two ids", []string{"rollout", "resume", "r1", "r2"}, "rollout resume: want one rollout id, got 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--server", unreachable}, tc.args...)
			code, stdout, stderr := runCLI(t, nil, args...)
			if code != exitUsage {
				t.Errorf("run(%q) exit code = %d, want %d (stderr %q)", args, code, exitUsage, stderr)
			}
			if !strings.HasPrefix(stderr, "medfleetctl: ") || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("run(%q) stderr = %q, want medfleetctl: ...%s...", args, stderr, tc.wantStderr)
			}
			if stdout != "" {
				t.Errorf("run(%q) stdout = %q, want nothing", args, stdout)
			}
		})
	}
}

// FuzzParseWindow: a window that parses prints as text that parses back to
// it.
func FuzzParseWindow(f *testing.F) {
	f.Add("sites=north;tz=Europe/Paris;days=sat,sun;start=23:00;duration=3h")
	f.Add("days=fri-mon;start=2:30;duration=90m")
	f.Add("start=00:00;duration=24h;sites=a,,b")
	f.Fuzz(func(t *testing.T, s string) {
		w, err := parseWindow(s)
		if err != nil {
			return
		}
		again, err := parseWindow(formatWindow(w))
		if err != nil {
			t.Fatalf("parseWindow(%q) = %v, but its formatWindow %q: %v", s, w, formatWindow(w), err)
		}
		if diff := cmp.Diff(w, again, protocmp.Transform()); diff != "" {
			t.Errorf("parseWindow(formatWindow(parseWindow(%q))) mismatch (-want +got):\n%s", s, diff)
		}
	})
}
