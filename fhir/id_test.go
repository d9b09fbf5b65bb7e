package fhir

import (
	"strings"
	"testing"
)

func TestDeviceID(t *testing.T) {
	long := strings.Repeat("a", 64)
	for _, tc := range []struct {
		device, want string
	}{
		{"pump-0001", "pump-0001"},
		{"Pump.1", "Pump.1"},
		{long, long},
		{"PUMP_0001", ".PUMP.0001"},
		{"a_b.c-d", ".a.b-.c--d"},
		{strings.Repeat("a_", 32), ".." + digest(strings.Repeat("a_", 32))},
	} {
		got := DeviceID(tc.device)
		if got != tc.want || !ValidID(got) {
			t.Errorf("DeviceID(%q) = %q (valid %v), want %q, a valid FHIR id", tc.device, got, ValidID(got), tc.want)
		}
		ref, err := ParseDeviceID(got)
		if err != nil || !ref.Matches(tc.device) {
			t.Errorf("ParseDeviceID(%q) = %+v, %v; want it to match %q", got, ref, err, tc.device)
		}
		if id, ok := ref.ID(); ok && id != tc.device {
			t.Errorf("ParseDeviceID(%q).ID() = %q, want %q", got, id, tc.device)
		}
	}
}

// Ids the export never writes are refused, so that one device has one id.
func TestParseDeviceIDRefuses(t *testing.T) {
	for _, id := range []string{"", "pump_1", ".pump", ".a-x", "-pump", "..abc", ".." + strings.Repeat("g", 32), strings.Repeat("a", 65), "a/b"} {
		if ref, err := ParseDeviceID(id); err == nil {
			t.Errorf("ParseDeviceID(%q) = %+v, want an error", id, ref)
		}
	}
}

// No two device ids share a Device id, nor a metric id, whatever their
// underscores, dots and dashes.
func TestIDsAreOneToOne(t *testing.T) {
	alphabet := []string{"a", "_", ".", "-", "1"}
	var keys []string
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			k := prefix + c
			if keyStart(k[0]) {
				keys = append(keys, k)
				gen(k, n-1)
			}
		}
	}
	gen("", 5)
	seen := map[string]string{}
	for _, k := range keys {
		for _, id := range []string{DeviceID(k), MetricID(k, MetricBattery), MetricID(k, MetricUsageHours), LocationID(LevelRoom, k)} {
			if other, dup := seen[id]; dup {
				t.Fatalf("%q and %q both have the id %q", other, k, id)
			}
			seen[id] = k
			if !ValidID(id) {
				t.Fatalf("%q: %q is not a FHIR id", k, id)
			}
		}
	}
}

func TestMetricID(t *testing.T) {
	long := strings.Repeat("p", 60)
	for _, tc := range []struct {
		device, kind, want string
	}{
		{"pump-1", MetricUsageHours, "pump-1-usage-hours"},
		{"pump-battery", MetricUsageHours, "pump-battery-usage-hours"},
		{"x-usage-hours", MetricBattery, "x-usage-hours-battery"},
		{"PUMP_1", MetricBattery, ".PUMP.1-battery"},
		{long, MetricBattery, ".." + digest(long) + "-battery"},
	} {
		got := MetricID(tc.device, tc.kind)
		if got != tc.want {
			t.Errorf("MetricID(%q, %q) = %q, want %q", tc.device, tc.kind, got, tc.want)
		}
		ref, kind, err := ParseMetricID(got)
		if err != nil || kind != tc.kind || !ref.Matches(tc.device) {
			t.Errorf("ParseMetricID(%q) = %+v, %q, %v; want device %q, kind %q", got, ref, kind, err, tc.device, tc.kind)
		}
	}
	for _, id := range []string{"pump-1", "pump-1-voltage", "-battery", "pump_1-battery"} {
		if _, _, err := ParseMetricID(id); err == nil {
			t.Errorf("ParseMetricID(%q) succeeded, want an error", id)
		}
	}
}

func FuzzParseDeviceID(f *testing.F) {
	for _, s := range []string{"pump-1", ".PUMP.1", ".a-.b--c", ".." + digest("x"), "-", ".", "..", ".-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		ref, err := ParseDeviceID(id)
		if err != nil {
			return
		}
		if key, ok := ref.ID(); ok && DeviceID(key) != id {
			t.Errorf("ParseDeviceID(%q) = %q, whose Device id is %q", id, key, DeviceID(key))
		}
		if _, _, err := ParseMetricID(id + "-battery"); err != nil && len(id)+8 <= maxID {
			t.Errorf("ParseMetricID(%q) = %v, want the device of %q", id+"-battery", err, id)
		}
	})
}
