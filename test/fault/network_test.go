package fault

import (
	"testing"
	"time"
)

// TestLossyNetwork runs the fleet through a network that drops,
// duplicates and reorders datagrams both ways for twenty seconds. CoAP's
// retransmissions, the server's answers to retransmitted requests and the
// devices' sequence numbers must make every report count once.
func TestLossyNetwork(t *testing.T) {
	s := startSystem(t, options{seed: 4})
	before := acceptedReports(s.replicas)
	lossy := faults{Drop: 0.2, Duplicate: 0.1, Reorder: 0.2}
	s.proxy.setFaults(upstream, lossy)
	s.proxy.setFaults(downstream, lossy)
	faulty := s.proxy.stats()
	load(t, 20*time.Second, "lossy network")
	s.proxy.heal()
	st := s.proxy.stats()
	accepted := acceptedReports(s.replicas) - before

	for d := range 2 {
		dir := direction(d)
		sent := st.Forwarded[d] - faulty.Forwarded[d] + st.Dropped[d] - faulty.Dropped[d]
		dropped, dup, held := st.Dropped[d]-faulty.Dropped[d], st.Duplicated[d]-faulty.Duplicated[d], st.Reordered[d]-faulty.Reordered[d]
		s.figures.add("%v: %d datagrams, %d dropped, %d duplicated, %d held back", dir, sent, dropped, dup, held)
		// The proxy's own faults are the premise of the test: without them
		// it would prove nothing.
		if sent < 1000 || dropped == 0 || dup == 0 || held == 0 {
			t.Errorf("%v: %d datagrams, %d dropped, %d duplicated, %d held back; want a lossy network under load", dir, sent, dropped, dup, held)
		}
	}
	s.figures.add("reports accepted while the network was lossy: %.0f", accepted)
	// 200 devices report once a second; through this much loss most reports
	// still get through in time, the rest queue.
	if accepted < fleetSize*20/4 {
		t.Errorf("%.0f reports accepted in 20 s of a lossy network, want at least %d", accepted, fleetSize*20/4)
	}
	s.checkGroundTruth()
}
