package fault

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// The environment of a test binary run as an etcd member (TestMain).
const (
	envMember  = "MEDFLEET_FAULT_ETCD_MEMBER" // the member's name
	envDir     = "MEDFLEET_FAULT_ETCD_DIR"
	envClient  = "MEDFLEET_FAULT_ETCD_CLIENT_URL"
	envPeer    = "MEDFLEET_FAULT_ETCD_PEER_URL"
	envCluster = "MEDFLEET_FAULT_ETCD_CLUSTER" // name=peer URL,...
	envState   = "MEDFLEET_FAULT_ETCD_STATE"   // new or existing
)

// memberLifetime bounds how long a member runs: a member whose test never
// stopped it still ends.
const memberLifetime = 15 * time.Minute

// runEtcdMember is the test binary run as an etcd member: it serves until
// SIGTERM, its parent goes away, or memberLifetime has passed, and returns
// the exit code.
func runEtcdMember(name string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "etcd member %s: %v\n", name, err)
		return 1
	}
	client, err := url.Parse(os.Getenv(envClient))
	if err != nil {
		return fail(err)
	}
	peer, err := url.Parse(os.Getenv(envPeer))
	if err != nil {
		return fail(err)
	}
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = os.Getenv(envDir)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = os.Getenv(envCluster)
	cfg.InitialClusterToken = "medfleet-fault"
	cfg.ClusterState = os.Getenv(envState)
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{"stderr"}
	// A killed process loses nothing the kernel already has: fsync guards
	// against power cuts, which these tests do not make.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fail(err)
	}
	defer e.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	parent := os.Getppid()
	orphaned := time.NewTicker(time.Second)
	defer orphaned.Stop()
	lifetime := time.NewTimer(memberLifetime)
	defer lifetime.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0
		case err := <-e.Err():
			return fail(err)
		case <-lifetime.C:
			return fail(fmt.Errorf("still running after %v", memberLifetime))
		case <-orphaned.C:
			if os.Getppid() != parent {
				return fail(fmt.Errorf("parent %d went away", parent))
			}
		}
	}
}

// etcdCluster is an etcd cluster whose members are processes on loopback.
type etcdCluster struct {
	t       *testing.T
	members []*etcdMember
	client  *clientv3.Client // the test's own, to every member
}

type etcdMember struct {
	name, dir, log  string
	clientURL, peer string
	initialCluster  string
	proc            *process
	everStarted     bool
	memberID        uint64 // from Status, once seen
}

// startEtcd starts a cluster of n members in dir and returns once it
// answers a write.
func startEtcd(t *testing.T, dir string, n int) *etcdCluster {
	t.Helper()
	c := &etcdCluster{t: t}
	var initial []string
	for i := range n {
		m := &etcdMember{
			name:      fmt.Sprintf("etcd%d", i),
			clientURL: "http://" + freeTCP(t),
			peer:      "http://" + freeTCP(t),
		}
		m.dir = filepath.Join(dir, m.name)
		m.log = filepath.Join(dir, m.name+".log")
		initial = append(initial, m.name+"="+m.peer)
		c.members = append(c.members, m)
		logTail(t, m.name, m.log)
	}
	for _, m := range c.members {
		m.initialCluster = strings.Join(initial, ",")
		c.start(m)
	}
	// The client's warnings of a member that is down are what the test
	// does on purpose.
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	c.client = cli
	eventually(t, 30*time.Second, 200*time.Millisecond, "etcd cluster answers a write", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Put(ctx, "/fault/ready", "1")
		return err == nil, fmt.Sprint(err)
	})
	for i := range c.members {
		c.waitMember(i)
	}
	return c
}

func (c *etcdCluster) start(m *etcdMember) {
	state := embed.ClusterStateFlagNew
	if m.everStarted {
		state = embed.ClusterStateFlagExisting
	}
	m.everStarted = true
	m.proc = startProcess(c.t, m.name, m.log, os.Args[0], nil, []string{
		envMember + "=" + m.name, envDir + "=" + m.dir, envClient + "=" + m.clientURL, envPeer + "=" + m.peer,
		envCluster + "=" + m.initialCluster, envState + "=" + state,
	})
}

// endpoints are the client URLs of every member.
func (c *etcdCluster) endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.clientURL)
	}
	return out
}

// status asks member i for its view of the cluster.
func (c *etcdCluster) status(i int) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.client.Status(ctx, c.members[i].clientURL)
}

// waitMember waits until member i answers and follows a leader.
func (c *etcdCluster) waitMember(i int) {
	c.t.Helper()
	m := c.members[i]
	eventually(c.t, 30*time.Second, 100*time.Millisecond, m.name+" answers with a leader", func() (bool, string) {
		if m.proc.exited() {
			c.t.Fatalf("%s exited: %v", m.name, m.proc.err)
		}
		st, err := c.status(i)
		if err != nil {
			return false, err.Error()
		}
		m.memberID = st.Header.GetMemberId()
		return st.Leader != 0, fmt.Sprintf("leader %x", st.Leader)
	})
}

// leader returns the index of the member the cluster follows.
func (c *etcdCluster) leader() int {
	c.t.Helper()
	var idx int
	eventually(c.t, 15*time.Second, 100*time.Millisecond, "etcd leader known", func() (bool, string) {
		for i, m := range c.members {
			if m.proc.exited() {
				continue
			}
			st, err := c.status(i)
			if err != nil || st.Leader == 0 {
				continue
			}
			for j, other := range c.members {
				if other.memberID == st.Leader {
					idx = j
					return true, ""
				}
			}
			return false, fmt.Sprintf("leader %x is no member this test knows", st.Leader)
		}
		return false, "no member answers with a leader"
	})
	return idx
}

// kill kills member i with SIGKILL.
func (c *etcdCluster) kill(i int) { c.members[i].proc.kill() }

// writable waits until the cluster accepts a write, and returns how long
// that took.
func (c *etcdCluster) writable(within time.Duration) time.Duration {
	c.t.Helper()
	began := time.Now()
	eventually(c.t, within, 50*time.Millisecond, "etcd accepts a write", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := c.client.Put(ctx, "/fault/writable", began.String())
		return err == nil, fmt.Sprint(err)
	})
	return time.Since(began)
}

// restart starts member i again on its data directory and waits until it
// is back in the cluster.
func (c *etcdCluster) restart(i int) {
	c.t.Helper()
	c.start(c.members[i])
	c.waitMember(i)
}
