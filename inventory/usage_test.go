package inventory

import (
	"testing"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestAddUsage(t *testing.T) {
	tests := []struct {
		name       string
		counters   []float64
		wantTotal  float64
		wantResets uint32
	}{
		{name: "first report counts whole", counters: []float64{18000}, wantTotal: 18000},
		{name: "increasing", counters: []float64{10, 25, 25, 40}, wantTotal: 40},
		{name: "reset counts from zero", counters: []float64{100, 160, 5, 30}, wantTotal: 190, wantResets: 1},
		{name: "reset to zero", counters: []float64{100, 0, 10}, wantTotal: 110, wantResets: 1},
		{name: "two resets", counters: []float64{50, 20, 70, 10}, wantTotal: 130, wantResets: 2},
		{name: "fractional seconds", counters: []float64{0.5, 1.25, 3.75}, wantTotal: 3.75},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &pb.DeviceStatus{}
			for _, c := range tc.counters {
				addUsage(st, c)
			}
			if st.UsageSeconds != tc.wantTotal || st.UsageResets != tc.wantResets {
				t.Errorf("addUsage(%v) = %v s, %d resets; want %v s, %d resets", tc.counters, st.UsageSeconds, st.UsageResets, tc.wantTotal, tc.wantResets)
			}
		})
	}
}
