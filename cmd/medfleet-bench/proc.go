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

// procSampler reads a process's CPU time at both ends of the window and its
// RSS every second in between.
type procSampler struct {
	pid  int
	proc string // /proc, replaced in tests

	mu  sync.Mutex
	res ServerUsage
}

func newProcSampler(pid int) *procSampler {
	return &procSampler{pid: pid, proc: "/proc", res: ServerUsage{PID: pid}}
}

func (p *procSampler) run(ctx context.Context, win window) {
	if !sleepUntil(ctx, win.start) {
		return
	}
	cpu0, err := p.cpuTicks()
	t0 := time.Now()
	if err != nil {
		p.fail(err)
		return
	}
	p.sampleRSS()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.NewTimer(time.Until(win.end))
	defer end.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end.C:
			break loop
		case <-tick.C:
			p.sampleRSS()
		}
	}
	cpu1, err := p.cpuTicks()
	if err != nil {
		p.fail(err)
		return
	}
	p.sampleRSS()
	p.mu.Lock()
	defer p.mu.Unlock()
	if el := time.Since(t0).Seconds(); el > 0 {
		p.res.CPUPercent = 100 * float64(cpu1-cpu0) / clockTicks / el
	}
}

func (p *procSampler) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.res.Err == "" {
		p.res.Err = err.Error()
	}
}

func (p *procSampler) sampleRSS() {
	rss, err := p.rssBytes()
	if err != nil {
		p.fail(err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.res.Samples++
	p.res.PeakRSSMiB = max(p.res.PeakRSSMiB, float64(rss)/(1<<20))
}

func (p *procSampler) result() *ServerUsage {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.res
	return &r
}

// cpuTicks returns utime+stime from /proc/PID/stat, in clock ticks.
func (p *procSampler) cpuTicks() (uint64, error) {
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

// rssBytes returns VmRSS from /proc/PID/status.
func (p *procSampler) rssBytes() (uint64, error) {
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
