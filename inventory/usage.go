package inventory

import (
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// addUsage folds a reported cumulative usage counter (seconds) into the
// device's total. Reports reach it in increasing sequence order, duplicates
// and replays already dropped, so the counter only goes down when the device
// reset it: the new counter then counts from zero and is added whole.
//
// The first counter a device ever reports is added whole too: a pump that
// joins the fleet with 5,000 hours on it has worked those hours.
func addUsage(st *pb.DeviceStatus, counter float64) {
	switch {
	case counter >= st.UsageCounter:
		st.UsageSeconds += counter - st.UsageCounter
	default:
		st.UsageResets++
		st.UsageSeconds += counter
	}
	st.UsageCounter = counter
}
