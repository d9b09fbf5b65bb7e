package rollout

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/inventory"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestWindowOpen(t *testing.T) {
	w, ferr := compileWindow(&pb.MaintenanceWindow{Sites: []string{"north"}, TimeZone: "Europe/Paris", Days: []string{"sat", "sun"},
		Start: "23:00", Duration: durationpb.New(3 * time.Hour)})
	if ferr != nil {
		t.Fatal(ferr)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	at := func(day, hour, minute int) time.Time { return time.Date(2026, 11, day, hour, minute, 0, 0, paris) } // 2026-11-28 is a Saturday
	for _, c := range []struct {
		site string
		now  time.Time
		want bool
	}{
		{"north", at(28, 23, 30), true},  // Saturday night
		{"north", at(29, 1, 59), true},   // past midnight, opened Saturday
		{"north", at(29, 2, 0), false},   // closed at 02:00
		{"north", at(27, 23, 30), false}, // Friday
		{"north", at(30, 1, 0), true},    // opened Sunday 23:00
		{"south", at(28, 23, 30), false}, // another site
		{"north", at(28, 22, 59), false},
	} {
		if got := w.open(c.site, c.now); got != c.want {
			t.Errorf("open(%s, %v) = %v, want %v", c.site, c.now, got, c.want)
		}
	}
	if !(windows{}).open("any", time.Now()) {
		t.Error("no windows: installs must be allowed any time")
	}
}

func TestNormalize(t *testing.T) {
	r := &pb.Rollout{Artifact: "artifacts/x"}
	if err := normalize(r); err != nil {
		t.Fatal(err)
	}
	if len(r.Waves) != 3 || r.Waves[0].GetDevices() != DefaultCanary || r.Waves[0].GetMinFinished() != 1 || r.Waves[0].GetSuccessPercent() != 100 ||
		r.Waves[1].GetErrorPercent() != 2 || r.Waves[1].GetMinFinished() != 20 || r.GetDeviceTimeout().AsDuration() != DefaultDeviceTimeout || r.GetMaxRetries() != DefaultMaxRetries {
		t.Fatalf("defaults: %v", r)
	}
	for field, r := range map[string]*pb.Rollout{
		"rollout.waves":                       {Waves: []*pb.Wave{{Devices: 2}}},
		"rollout.waves[1].cumulative_percent": {Waves: []*pb.Wave{{CumulativePercent: 50}, {CumulativePercent: 40}, {CumulativePercent: 100}}},
		"rollout.waves[0]":                    {Waves: []*pb.Wave{{Devices: 2, CumulativePercent: 10}, {CumulativePercent: 100}}},
		"rollout.waves[0].error_percent":      {Waves: []*pb.Wave{{CumulativePercent: 100, ErrorPercent: 120}}},
		"rollout.rate.increment_factor":       {Rate: &pb.RolloutRate{PerMinute: 5, IncrementFactor: 9, IncreaseEvery: 1}},
		"rollout.max_retries":                 {MaxRetries: proto.Int32(11)},
		"rollout.windows[0].time_zone":        {Windows: []*pb.MaintenanceWindow{{TimeZone: "Mars/Olympus", Start: "01:00", Duration: durationpb.New(time.Hour)}}},
		"rollout.windows[0].start":            {Windows: []*pb.MaintenanceWindow{{Start: "25:00", Duration: durationpb.New(time.Hour)}}},
		"rollout.windows[0].days":             {Windows: []*pb.MaintenanceWindow{{Days: []string{"funday"}, Start: "01:00", Duration: durationpb.New(time.Hour)}}},
		"rollout.windows[0].duration":         {Windows: []*pb.MaintenanceWindow{{Start: "01:00"}}},
		"rollout.device_timeout":              {DeviceTimeout: durationpb.New(time.Millisecond)},
	} {
		var fe *FieldError
		if err := normalize(r); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: normalize = %v", field, err)
		}
	}
}

func TestAssignWaves(t *testing.T) {
	waves := []*pb.Wave{{Devices: 3}, {CumulativePercent: 25}, {CumulativePercent: 100}}
	var devices []*pb.RolloutDevice
	for i := range 200 {
		devices = append(devices, &pb.RolloutDevice{Device: fmt.Sprintf("pump-%03d", i)})
	}
	assignWaves("r1", waves, devices)
	n := map[int32]int{}
	for _, d := range devices {
		n[d.GetWave()]++
	}
	if n[0] != 3 || n[1] != 47 || n[2] != 150 {
		t.Fatalf("wave sizes %v, want 3, 47 (25 %% of 200 minus the canary), 150", n)
	}
	canary := func(id string) []string {
		assignWaves(id, waves, devices)
		var c []string
		for _, d := range devices {
			if d.GetWave() == 0 {
				c = append(c, d.GetDevice())
			}
		}
		return c
	}
	if a, b := canary("r1"), canary("r1"); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("the same rollout chose two canaries: %v, %v", a, b)
	}
	if a, b := canary("r1"), canary("r2"); fmt.Sprint(a) == fmt.Sprint(b) {
		t.Errorf("two rollouts chose the same canary %v", a)
	}
}

func TestObserve(t *testing.T) {
	notified := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	d := &pb.RolloutDevice{State: pb.ExecutionState_EXECUTION_STATE_NOTIFIED, NotifyTime: ts(notified)}
	after, before := notified.Add(time.Minute), notified.Add(-time.Minute)
	for name, c := range map[string]struct {
		s      inventory.Summary
		now    time.Time
		want   pb.ExecutionState
		result int
	}{
		"re-registered with the version": {inventory.Summary{Firmware: "2.0", Registered: after}, after, pb.ExecutionState_EXECUTION_STATE_SUCCEEDED, coap.FWResultSuccess},
		"version from before the offer":  {inventory.Summary{Firmware: "2.0", Registered: before}, after, pb.ExecutionState_EXECUTION_STATE_NOTIFIED, 0},
		"reports success, registration lost": {inventory.Summary{Firmware: "2.0", Registered: before, FirmwareResult: coap.FWResultSuccess, FirmwareTime: after}, after,
			pb.ExecutionState_EXECUTION_STATE_SUCCEEDED, coap.FWResultSuccess},
		"success of an older update": {inventory.Summary{Firmware: "1.9", Registered: before, FirmwareResult: coap.FWResultSuccess, FirmwareTime: after}, after,
			pb.ExecutionState_EXECUTION_STATE_NOTIFIED, coap.FWResultSuccess},
		"downloading":                    {inventory.Summary{FirmwareState: coap.FWDownloading, FirmwareTime: after}, after, pb.ExecutionState_EXECUTION_STATE_DOWNLOADING, 0},
		"an old failure is not this one": {inventory.Summary{FirmwareResult: coap.FWResultFailed, FirmwareTime: before}, after, pb.ExecutionState_EXECUTION_STATE_NOTIFIED, 0},
		"self-test failed":               {inventory.Summary{FirmwareResult: coap.FWResultFailed, FirmwareTime: after}, after, pb.ExecutionState_EXECUTION_STATE_FAILED, coap.FWResultFailed},
		"bad signature":                  {inventory.Summary{FirmwareResult: coap.FWResultIntegrity, FirmwareTime: after}, after, pb.ExecutionState_EXECUTION_STATE_FAILED, coap.FWResultIntegrity},
		"deferred while busy":            {inventory.Summary{FirmwareState: coap.FWDownloaded, FirmwareResult: coap.FWResultDeferred, FirmwareTime: after}, after, pb.ExecutionState_EXECUTION_STATE_DEFERRED, coap.FWResultDeferred},
		"downloaded waits unbounded":     {inventory.Summary{FirmwareState: coap.FWDownloaded, FirmwareTime: after}, after.Add(48 * time.Hour), pb.ExecutionState_EXECUTION_STATE_DOWNLOADED, 0},
		"download timed out":             {inventory.Summary{FirmwareState: coap.FWDownloading, FirmwareTime: after}, notified.Add(25 * time.Hour), pb.ExecutionState_EXECUTION_STATE_TIMED_OUT, 0},
		"install timed out":              {inventory.Summary{FirmwareState: coap.FWUpdating, FirmwareTime: after}, after.Add(25 * time.Hour), pb.ExecutionState_EXECUTION_STATE_TIMED_OUT, 0},
	} {
		got, result, _ := observe(d, &c.s, "2.0", c.now, 24*time.Hour)
		if got != c.want || result != c.result {
			t.Errorf("%s: observe = %v, result %d; want %v, %d", name, got, result, c.want, c.result)
		}
	}
}

func TestBudget(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var devices []*pb.RolloutDevice
	for i := range 30 {
		d := &pb.RolloutDevice{State: pb.ExecutionState_EXECUTION_STATE_QUEUED}
		if i < 4 {
			d.State, d.NotifyTime = pb.ExecutionState_EXECUTION_STATE_SUCCEEDED, ts(now.Add(-10*time.Minute))
		}
		if i == 4 {
			d.State, d.NotifyTime = pb.ExecutionState_EXECUTION_STATE_NOTIFIED, ts(now.Add(-10*time.Second))
		}
		devices = append(devices, d)
	}
	c := &Controller{}
	for name, tc := range map[string]struct {
		rate *pb.RolloutRate
		want int
	}{
		"unlimited":   {nil, 1 << 62},
		"constant":    {&pb.RolloutRate{PerMinute: 5}, 4}, // one offered in the last minute
		"exponential": {&pb.RolloutRate{PerMinute: 5, IncrementFactor: 2, IncreaseEvery: 2}, 19},
		"capped":      {&pb.RolloutRate{PerMinute: 5, IncrementFactor: 2, IncreaseEvery: 2, MaxPerMinute: 8}, 7},
	} {
		got := c.budget(&pb.Rollout{Rate: tc.rate}, devices, now)
		if tc.rate == nil && got < tc.want || tc.rate != nil && got != tc.want {
			t.Errorf("%s: budget = %d, want %d", name, got, tc.want)
		}
	}
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
