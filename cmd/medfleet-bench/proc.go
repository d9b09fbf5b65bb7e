package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports (sysconf needs cgo).
const clockTicks = 100

// ServerUsage is the server process's resource use over the measured window.
type ServerUsage struct {
	PID        int     `json:"pid"`
	CPUPercent float64 `json:"cpu_percent_of_one_core"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Samples    int     `json:"rss_samples"`
	Err        string  `json:"error,omitempty"`
}

// procSampler reads a process's CPU time and RSS at the start of the
// window, every second, whenever asked (sample, at the phase boundaries of
// a firmware run) and at the end, so that any span between two samples
// can be measured afterwards.
type procSampler struct {
	pid  int
	proc string // /proc, replaced in tests

	mu      sync.Mutex
	samples []procSample
	err     string
}

// procSample is one reading: utime+stime in clock ticks, and VmRSS.
type procSample struct {
	at  time.Time
	cpu uint64
	rss uint64
}

func newProcSampler(pid int) *procSampler {
	return &procSampler{pid: pid, proc: "/proc"}
}

// run samples from win.start until win ends or ctx is done.
func (p *procSampler) run(ctx context.Context, win *window) {
	if !sleepUntil(ctx, win.start) {
		return
	}
	p.sample()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.NewTimer(time.Until(win.End()))
	defer end.Stop()
	changed := win.changed
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end.C:
			break loop
		case <-changed:
			changed = nil
			end.Reset(time.Until(win.End()))
		case <-tick.C:
			p.sample()
		}
	}
	p.sample()
}

// sample takes one reading now; a nil sampler does nothing. The lock is
// held throughout, so that samples taken from two goroutines (the ticker,
// a phase boundary) are kept in time order.
func (p *procSampler) sample() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	at := time.Now()
	cpu, err := p.cpuTicks()
	if err != nil {
		p.fail(err)
		return
	}
	rss, err := p.rssBytes()
	if err != nil {
		p.fail(err)
		return
	}
	p.samples = append(p.samples, procSample{at: at, cpu: cpu, rss: rss})
}

// fail keeps the first error; p.mu is held.
func (p *procSampler) fail(err error) {
	if p.err == "" {
		p.err = err.Error()
	}
}

// result returns the CPU use and the peak RSS from the first sample at or
// after from to the first sample at or after to (the samples taken at a
// boundary come just after it); nil for a nil sampler.
func (p *procSampler) result(from, to time.Time) *ServerUsage {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return usageOf(p.pid, p.samples, from, to, p.err)
}

func usageOf(pid int, samples []procSample, from, to time.Time, errText string) *ServerUsage {
	u := &ServerUsage{PID: pid, Err: errText}
	var first, last *procSample
	for i := range samples {
		s := &samples[i]
		if s.at.Before(from) {
			continue
		}
		if first == nil {
			first = s
		}
		last = s
		u.Samples++
		u.PeakRSSMiB = max(u.PeakRSSMiB, float64(s.rss)/(1<<20))
		if !s.at.Before(to) {
			break
		}
	}
	if first != nil {
		if el := last.at.Sub(first.at).Seconds(); el > 0 {
			u.CPUPercent = 100 * float64(last.cpu-first.cpu) / clockTicks / el
		}
	}
	return u
}

// machinePID makes a procSampler read the whole machine: the busy time of
// every CPU from /proc/stat, and no RSS.
const machinePID = -1

// cpuTicks returns utime+stime from /proc/PID/stat, in clock ticks (for
// the machine, the busy ticks of all CPUs).
func (p *procSampler) cpuTicks() (uint64, error) {
	if p.pid == machinePID {
		b, err := os.ReadFile(p.proc + "/stat")
		if err != nil {
			return 0, err
		}
		return parseMachineStat(b)
	}
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", p.proc, p.pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads fields 14 and 15 (utime, stime) of /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat: utime %q, stime %q", f[11], f[12])
	}
	return utime + stime, nil
}

// parseMachineStat returns the busy ticks of all CPUs from the first line
// of /proc/stat ("cpu  user nice system idle iowait irq softirq steal
// ..."): all but idle and iowait, guest time being counted in user already.
func parseMachineStat(b []byte) (uint64, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("proc stat: first line %q, want cpu and 8 counters", line)
	}
	var busy uint64
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat: cpu counter %d: %q", i+1, v)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, nil
}

// rssBytes returns VmRSS from /proc/PID/status (0 for the machine).
func (p *procSampler) rssBytes() (uint64, error) {
	if p.pid == machinePID {
		return 0, nil
	}
	f, err := os.Open(fmt.Sprintf("%s/%d/status", p.proc, p.pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmRSS(f)
}

func parseVmRSS(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: VmRSS %q", rest)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc status: VmRSS %q", rest)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("proc status: no VmRSS")
}
