// Package fault breaks a running Medfleet on purpose and checks that no
// device report is lost or counted twice. Every part is a real process on
// loopback: an etcd cluster of three members (this test binary, run again
// as an embedded etcd), two medfleetd replicas built from this tree that
// share it, and, in the test process, a UDP proxy between the devices and
// the replicas (a load balancer and a lossy network in one) and a fleet of
// 200 simulated devices (agent.Simulator) with their queues on disk.
//
// The scenarios:
//
//   - TestEtcdMemberKilledUnderLoad: the etcd leader is killed and restarted
//     while devices report and a writer creates and updates devices through
//     both replicas; every write that returned OK is visible through both.
//   - TestLeaderReplicaKilled: the replica that leads the controllers is
//     killed; the other takes the lead (the time is measured) and its
//     devices, and the killed one comes back.
//   - TestServerDownWhileAgentsRun: both replicas are killed for ten
//     seconds while the devices keep reporting into their queues.
//   - TestLossyNetwork: 20 % of datagrams dropped, 10 % duplicated and 20 %
//     held back, both ways, for twenty seconds.
//   - TestAgentRestartedMidReport: the whole fleet is stopped and started
//     again from its state on disk, three times in quick succession, while
//     some pumps download a firmware image, which they resume.
//
// Each ends with the ground truth: the devices stop making reports, deliver
// what they queued, and then every replica's API must show, for every
// device, the sequence number, the count of accepted reports and the usage
// seconds the device itself made.
//
// The suite takes a few minutes; run one scenario with
//
//	go test ./test/fault -run TestLossyNetwork -v
//
// On failure each process's log tail is printed; the logs are in the test's
// temporary directory.
package fault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// medfleetd is the path of the medfleetd built from this tree for this
// run, or the one MEDFLEET_FAULT_MEDFLEETD names (to test another build).
var medfleetd string

func TestMain(m *testing.M) {
	if name := os.Getenv(envMember); name != "" {
		os.Exit(runEtcdMember(name))
	}
	if medfleetd = os.Getenv("MEDFLEET_FAULT_MEDFLEETD"); medfleetd != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "medfleet-fault-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	medfleetd = filepath.Join(dir, "medfleetd")
	if err := build(medfleetd, "./cmd/medfleetd"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles pkg (relative to the module root) into out.
func build(out, pkg string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

// moduleRoot is the nearest directory above the working directory that
// holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// process is a child process whose output goes to a log file. Every
// process is killed when its test ends.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited
	err  error         // its exit status, once done is closed
}

// startProcess runs path with args and env added to this process's
// environment, its output appended to logPath.
func startProcess(t *testing.T, name, logPath, path string, args, env []string) *process {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "=== %s %s: %s %s\n", time.Now().Format(time.TimeOnly+".000"), name, filepath.Base(path), strings.Join(args, " "))
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the exit; a process that has already
// exited is left as it is.
func (p *process) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to timeout for the exit, then kills. It
// returns the exit status of a process that stopped by itself.
func (p *process) stop(timeout time.Duration) error {
	if p.exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", p.name, timeout)
	}
}

// logTail prints the end of a log file when the test failed.
func logTail(t *testing.T, name, path string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Logf("--- %s log: %v", name, err)
			return
		}
		const n = 6000
		if len(b) > n {
			b = b[len(b)-n:]
		}
		t.Logf("--- %s log (%s), last %d bytes:\n%s", name, path, len(b), b)
	})
}

// freeTCP returns a loopback address whose TCP port was free a moment ago.
func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// freeUDP returns a loopback address whose UDP port was free a moment ago.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// eventually polls cond every interval until it holds, and fails the test
// with cond's last words when within has passed.
func eventually(t *testing.T, within, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last seen: %s", what, within, state)
		}
		time.Sleep(interval)
	}
}

// load lets the fleet run for d: the length of a fault, or of the traffic
// around one. It asserts nothing about time.
func load(t *testing.T, d time.Duration, what string) {
	t.Logf("%s: running for %v", what, d)
	time.Sleep(d)
}

// figures collects a scenario's measured figures and logs them together
// when the test ends, whatever its outcome.
type figures struct {
	mu    sync.Mutex
	lines []string
}

func newFigures(t *testing.T) *figures {
	f := &figures{}
	start := time.Now()
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.lines = append(f.lines, fmt.Sprintf("run time: %v", time.Since(start).Round(100*time.Millisecond)))
		t.Logf("figures of %s:\n  %s", t.Name(), strings.Join(f.lines, "\n  "))
	})
	return f
}

func (f *figures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, fmt.Sprintf(format, args...))
}

// contextFor is a context that ends with the test, or after d.
func contextFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
