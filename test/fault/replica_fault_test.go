package fault

import (
	"fmt"
	"testing"
	"time"

	"github.com/medfleet/medfleet/agent"
)

// takeoverWithin is how soon a replica must lead after the leader died:
// the leader's lease is 5 s (server/leader.go), and the rest is slack.
const takeoverWithin = 15 * time.Second

// TestLeaderReplicaKilled kills the replica that leads the controllers
// while the fleet reports. The other must take the lead, and the devices
// the dead one served must go on reporting through it; the dead one then
// comes back, and both stop gracefully at the end.
func TestLeaderReplicaKilled(t *testing.T) {
	s := startSystem(t, options{seed: 2})
	leader, survivor := s.leaderReplica(), s.replicas[0]
	if survivor == leader {
		survivor = s.replicas[1]
	}
	load(t, 3*time.Second, "two replicas")

	routed := s.proxy.stats()
	atKill := s.fleet.sim.Truth()
	leader.kill()
	killed := time.Now()
	t.Logf("killed %s, the leader", leader.name)
	// Two clocks from the kill: until the survivor leads, and until every
	// device, the dead replica's too, has had a report it made after the
	// kill accepted by the survivor.
	var takeover, moved time.Duration
	behind := fmt.Sprintf("%d devices", len(atKill))
	for (takeover == 0 || moved == 0) && time.Since(killed) < takeoverWithin+15*time.Second {
		if leads, err := survivor.leads(); err == nil && leads && takeover == 0 {
			takeover = time.Since(killed)
		}
		if seqs, err := lastSeqs(survivor); err == nil && moved == 0 {
			late, example := 0, ""
			for id, tr := range atKill {
				if seqs[id] <= tr.LastSeq {
					late++
					example = fmt.Sprintf("%s at seq %d, made %d before the kill", id, seqs[id], tr.LastSeq)
				}
			}
			if late == 0 {
				moved = time.Since(killed)
			}
			behind = fmt.Sprintf("%d devices without a report since the kill, e.g. %s", late, example)
		}
		time.Sleep(100 * time.Millisecond)
	}
	switch {
	case takeover == 0:
		t.Errorf("%s did not take the lead within %v of the leader's death", survivor.name, time.Since(killed).Round(time.Second))
	case takeover > takeoverWithin:
		t.Errorf("%s took the lead %v after the leader died, want at most %v", survivor.name, takeover, takeoverWithin)
		fallthrough
	default:
		s.figures.add("time to take over the lead: %v", takeover.Round(10*time.Millisecond))
	}
	st := s.proxy.stats()
	if moved == 0 {
		t.Fatalf("not every device reports through %s %v after the kill: %s", survivor.name, time.Since(killed).Round(time.Second), behind)
	}
	s.figures.add("every device reporting through %s %v after the kill; %d devices rerouted by the proxy",
		survivor.name, moved.Round(100*time.Millisecond), st.Moves-routed.Moves)
	if st.Moves == routed.Moves {
		t.Errorf("the proxy moved no device to %s: the dead replica served none", survivor.name)
	}

	load(t, 3*time.Second, "one replica")
	leader.start()
	t.Logf("%s is back", leader.name)
	s.waitOneLeader()
	load(t, 3*time.Second, "two replicas again")
	s.checkGroundTruth()
	// After all that, both still shut down cleanly: exit 0 on SIGTERM.
	for _, r := range s.replicas {
		r.stop()
	}
}

// TestServerDownWhileAgentsRun kills both replicas for ten seconds while
// the devices go on making reports, which they queue on disk, and starts
// them again: every queued report must count once.
func TestServerDownWhileAgentsRun(t *testing.T) {
	s := startSystem(t, options{seed: 3})
	load(t, 3*time.Second, "two replicas")
	made := madeReports(s.fleet.sim.Truth())
	for _, r := range s.replicas {
		r.kill()
	}
	routed := s.proxy.stats()
	load(t, 10*time.Second, "both replicas down")
	queued := madeReports(s.fleet.sim.Truth()) - made
	unrouted := s.proxy.stats().Unrouted - routed.Unrouted
	for _, r := range s.replicas {
		r.start()
	}
	s.figures.add("reports made while both replicas were down: %d; datagrams with nowhere to go: %d", queued, unrouted)
	// A device takes no report while a request waits for its timeout (5 s),
	// so it makes fewer than one a second without a server; but it makes
	// some, and they wait in its queue.
	if queued < fleetSize {
		t.Errorf("the devices made %d reports in the 10 s without a server, want at least one each (%d)", queued, fleetSize)
	}
	load(t, 2*time.Second, "replicas back")
	s.checkGroundTruth()
}

// madeReports is the number of reports the fleet has made.
func madeReports(truth map[string]agent.Truth) uint64 {
	var n uint64
	for _, tr := range truth {
		n += tr.LastSeq
	}
	return n
}

// leaderReplica waits until exactly one replica says it leads, and
// returns it.
func (s *system) leaderReplica() *replica {
	s.t.Helper()
	var leader *replica
	eventually(s.t, takeoverWithin, 100*time.Millisecond, "one replica leads", func() (bool, string) {
		leader = nil
		var says []string
		n := 0
		for _, r := range s.replicas {
			leads, err := r.leads()
			if err != nil {
				says = append(says, err.Error())
				continue
			}
			says = append(says, fmt.Sprintf("%s leader %v", r.name, leads))
			if leads {
				leader = r
				n++
			}
		}
		return n == 1, fmt.Sprint(says)
	})
	return leader
}

// waitOneLeader waits until exactly one replica leads, and fails the test
// if two say so at once in consecutive polls. (One poll may catch a
// handover between the questions to each replica.)
func (s *system) waitOneLeader() {
	s.t.Helper()
	both := 0
	eventually(s.t, takeoverWithin, 100*time.Millisecond, "exactly one replica leads", func() (bool, string) {
		var leaders []string
		answered := 0
		for _, r := range s.replicas {
			leads, err := r.leads()
			if err != nil {
				continue
			}
			answered++
			if leads {
				leaders = append(leaders, r.name)
			}
		}
		if len(leaders) > 1 {
			if both++; both == 3 {
				s.t.Fatalf("two replicas lead at once, in 3 polls 100 ms apart: %v", leaders)
			}
		} else {
			both = 0
		}
		return answered == len(s.replicas) && len(leaders) == 1, fmt.Sprintf("%d answered, leaders %v", answered, leaders)
	})
}
