package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// With --metrics (medfleetd's /metrics URL), the run reads the server's own
// counters when the measured window starts and when it ends, and reports
// their rates over it: how many etcd transactions the load cost, by what
// they did, and how many reports the server accepted (which should be what
// the devices saw acknowledged).

// ServerCounters are rates of medfleetd's counters over the measured window.
type ServerCounters struct {
	// EtcdTxnsPerSecond are etcd transactions a second by op (checkpoint,
	// create, update), from medfleet_etcd_txn_duration_seconds.
	EtcdTxnsPerSecond map[string]float64 `json:"etcd_txns_per_s,omitempty"`
	// ReportsAcceptedPerSecond is medfleet_ingest_reports_total{result="accepted"}.
	ReportsAcceptedPerSecond float64 `json:"reports_accepted_per_s"`
	Err                      string  `json:"error,omitempty"`
}

// counterSample is one reading of the counters that matter.
type counterSample struct {
	at       time.Time
	txns     map[string]float64
	accepted float64
}

// scrapeCounters reads url (Prometheus text format).
func scrapeCounters(ctx context.Context, url string) (counterSample, error) {
	s := counterSample{at: time.Now(), txns: map[string]float64{}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return s, fmt.Errorf("%s: %w", url, err)
	}
	for _, m := range families["medfleet_etcd_txn_duration_seconds"].GetMetric() {
		s.txns[label(m, "op")] += float64(m.GetHistogram().GetSampleCount())
	}
	for _, m := range families["medfleet_ingest_reports_total"].GetMetric() {
		if label(m, "result") == "accepted" {
			s.accepted += m.GetCounter().GetValue()
		}
	}
	return s, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// countersOver is the rates between two readings.
func countersOver(from, to counterSample) *ServerCounters {
	secs := to.at.Sub(from.at).Seconds()
	if secs <= 0 {
		return &ServerCounters{Err: "no time between the readings"}
	}
	c := &ServerCounters{EtcdTxnsPerSecond: map[string]float64{}, ReportsAcceptedPerSecond: (to.accepted - from.accepted) / secs}
	for op, n := range to.txns {
		c.EtcdTxnsPerSecond[op] = (n - from.txns[op]) / secs
	}
	return c
}

// watchCounters reads url when win starts and when it ends, and returns
// a function that waits for both and gives the rates between; nil rates
// without a url.
func watchCounters(ctx context.Context, url string, win *window) func() *ServerCounters {
	if url == "" {
		return func() *ServerCounters { return nil }
	}
	var res *ServerCounters
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !sleepUntil(ctx, win.start) {
			return
		}
		first, err := scrapeCounters(ctx, url)
		if err != nil {
			res = &ServerCounters{Err: err.Error()}
			return
		}
		for end := win.End(); ; end = win.End() { // a download run moves its end
			if !sleepUntil(ctx, end) {
				return
			}
			if !win.End().After(end) {
				break
			}
		}
		last, err := scrapeCounters(ctx, url)
		if err != nil {
			res = &ServerCounters{Err: err.Error()}
			return
		}
		res = countersOver(first, last)
	}()
	return func() *ServerCounters {
		<-done
		return res
	}
}
