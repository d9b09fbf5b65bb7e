// Package observability checks the operator-facing files in
// deploy/observability against a real medfleetd: the Grafana dashboard and
// the Prometheus alerting rules must be well formed, and every metric and
// label their PromQL names must be in what medfleetd's /metrics serves, so
// that a renamed metric breaks this test rather than a dashboard at 3 a.m.
package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"gopkg.in/yaml.v3"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/servertest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

const (
	dashboardFile = "../../deploy/observability/grafana-dashboard.json"
	rulesFile     = "../../deploy/observability/alerts.yaml"
	operationsDoc = "../../docs/operations.md"
	// runbook is where every alert's description must point.
	runbook = "docs/operations.md#observability"
)

// targetLabels are added by Prometheus when it scrapes, so they are never
// in the exposition itself.
var targetLabels = set("job", "instance")

// wantAlerts are the alerts the rules file must keep.
var wantAlerts = []string{"MedfleetDown", "FleetOnlineLow", "IngestRejectsHigh", "IngestServerErrors",
	"IngestStalled", "EtcdCommitSlow", "CheckpointFailing", "CheckpointBacklog"}

// query is one PromQL expression of the dashboard or the rules, named for
// messages.
type query struct {
	where string
	expr  string
	refs  refs
}

// dashboard is the part of a Grafana dashboard model the test reads.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

// ruleFile is the Prometheus rules format.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// labelValuesQuery is a Grafana template variable query over one metric.
var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// dashboardQueries checks the dashboard's structure and returns its PromQL.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID != "medfleet-fleet" || d.Title != "Medfleet fleet" || d.SchemaVersion < 36 {
		t.Errorf("%s: uid %q, title %q, schemaVersion %d; want medfleet-fleet, Medfleet fleet, 36 or later", dashboardFile, d.UID, d.Title, d.SchemaVersion)
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	if !slices.Contains(vars, "datasource") {
		t.Errorf("%s: no datasource variable; variables %v", dashboardFile, vars)
	}

	var (
		queries []query
		rows    []string
		ids     = map[int]string{}
	)
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if other, dup := ids[p.ID]; dup {
				t.Errorf("%s: panels %q and %q share id %d", dashboardFile, other, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type == "row" {
				rows = append(rows, p.Title)
				walk(p.Panels)
				continue
			}
			where := fmt.Sprintf("%s: panel %q", dashboardFile, p.Title)
			if p.Title == "" || len(p.Description) < 40 {
				t.Errorf("%s: want a title and a description saying what a bad value means", where)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: datasource %+v, want the ${datasource} variable", where, p.Datasource)
			}
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: gridPos %+v outside the 24 columns", where, p.GridPos)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no targets", where)
			}
			for _, tg := range p.Targets {
				queries = append(queries, query{where: where + " " + tg.RefID, expr: tg.Expr})
			}
		}
	}
	walk(d.Panels)
	for _, want := range []string{"Fleet", "Ingest", "Storage", "API"} {
		if !slices.Contains(rows, want) {
			t.Errorf("%s: rows %q, want a row %q", dashboardFile, rows, want)
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			queries = append(queries, query{where: fmt.Sprintf("%s: annotation %q", dashboardFile, a.Name), expr: a.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil { // a bare string in older models
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Fatalf("%s: variable %s: query %s: %v", dashboardFile, v.Name, v.Query, err)
			}
		}
		m := labelValuesQuery.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", dashboardFile, v.Name, q.Query)
			continue
		}
		// The label the variable lists must be on the metric: check it as a matcher.
		expr := strings.TrimSuffix(m[1], "}")
		if strings.HasSuffix(m[1], "}") {
			expr += ", " + m[2] + `=~".+"}`
		} else {
			expr += "{" + m[2] + `=~".+"}`
		}
		queries = append(queries, query{where: fmt.Sprintf("%s: variable %s", dashboardFile, v.Name), expr: expr})
	}
	return parseQueries(t, queries)
}

// ruleQueries checks the rules file's structure and returns its PromQL.
func ruleQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f ruleFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var (
		queries []query
		seen    = map[string]bool{} // alert/severity
		names   []string
	)
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("%s: group %q: want a name and rules", rulesFile, g.Name)
		}
		for i, r := range g.Rules {
			where := fmt.Sprintf("%s: group %s rule %d (%s)", rulesFile, g.Name, i, r.Alert)
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: want alert and expr", where)
				continue
			}
			if _, err := model.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for %q: %v", where, r.For, err)
			}
			sev := r.Labels["severity"]
			if sev != "critical" && sev != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", where, sev)
			}
			if seen[r.Alert+"/"+sev] {
				t.Errorf("%s: a second %s rule of severity %s", where, r.Alert, sev)
			}
			seen[r.Alert+"/"+sev] = true
			names = append(names, r.Alert)
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary annotation", where)
			}
			if d := r.Annotations["description"]; len(d) < 80 || !strings.Contains(d, runbook) {
				t.Errorf("%s: description %q: want what it means, what to check first, and %s", where, d, runbook)
			}
			queries = append(queries, query{where: where, expr: r.Expr})
		}
	}
	for _, want := range wantAlerts {
		if !slices.Contains(names, want) {
			t.Errorf("%s: no alert %s; alerts %v", rulesFile, want, names)
		}
	}
	return parseQueries(t, queries)
}

func parseQueries(t *testing.T, qs []query) []query {
	t.Helper()
	for i := range qs {
		r, err := promRefs(qs[i].expr)
		if err != nil {
			t.Errorf("%s: %q: %v", qs[i].where, qs[i].expr, err)
			continue
		}
		if len(r.Metrics) == 0 {
			t.Errorf("%s: %q selects no metric", qs[i].where, qs[i].expr)
		}
		qs[i].refs = r
	}
	return qs
}

func TestDashboard(t *testing.T) {
	if qs := dashboardQueries(t); len(qs) < 20 {
		t.Errorf("%s has %d queries, want the panels of the brief (at least 20)", dashboardFile, len(qs))
	}
}

func TestAlertRules(t *testing.T) {
	if qs := ruleQueries(t); len(qs) < len(wantAlerts) {
		t.Errorf("%s has %d rules, want at least %d", rulesFile, len(qs), len(wantAlerts))
	}
}

// TestMetricsServed starts medfleetd, gives every metric family a sample
// with real CoAP and gRPC traffic, and checks the dashboard's and the
// rules' metrics and labels against its /metrics.
func TestMetricsServed(t *testing.T) {
	queries := append(dashboardQueries(t), ruleQueries(t)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cfg := servertest.Config(t)
	cfg.Inventory.CheckpointInterval = 50 * time.Millisecond
	srv := servertest.Start(t, cfg)
	metricsURL := "http://" + srv.Addrs().HTTP.String() + "/metrics"

	cc, err := udp.Dial(srv.Addrs().CoAP.String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	reg, err := (&coap.Registration{Profile: "infusion-pump", Model: "Alaris 8100", Serial: "S1", Firmware: "12.1.0"}).Encode(coap.FormatCBOR)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		path  string
		cf    message.MediaType
		body  []byte
		query []string
		want  codes.Code
	}{
		{"/rd", coap.FormatCBOR, reg, []string{"ep=pump-1", "lt=60"}, codes.Created},
		{"/dp", coap.FormatSenMLCBOR, report(t, 1), []string{"ep=pump-1"}, codes.Changed},
		{"/dp", coap.FormatSenMLCBOR, report(t, 1), []string{"ep=pump-1"}, codes.Changed}, // duplicate
		{"/dp", coap.FormatSenMLJSON, []byte(`[{"n":"usage","u":"s","v":60}]`), []string{"ep=pump-1"}, codes.BadRequest},
	}
	for _, s := range steps {
		if code := post(ctx, t, cc, s.path, s.cf, s.body, s.query...); code != s.want {
			t.Fatalf("POST %s %v = %v, want %v", s.path, s.query, code, s.want)
		}
	}

	conn, err := grpc.NewClient(srv.Addrs().GRPC.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewDeviceServiceClient(conn).ListDevices(ctx, &pb.ListDevicesRequest{}); err != nil {
		t.Fatalf("ListDevices: %v", err)
	}

	// The checkpoint after the reports writes pump-1's status. otelgrpc
	// records a call after its response is sent, so that may come late too.
	listDevices := map[string]string{"rpc_method": "medfleet.v1.DeviceService/ListDevices", "rpc_response_status_code": "OK"}
	first := scrapeUntil(ctx, t, metricsURL, func(s scrape) bool {
		return s.sum("medfleet_checkpoint_size_count", nil) > 0 && s.sum("rpc_server_call_duration_seconds_count", listDevices) > 0
	})

	t.Run("dashboard and rules", func(t *testing.T) {
		for _, q := range queries {
			for _, m := range q.refs.Metrics {
				if m == "up" { // Prometheus's own
					continue
				}
				labels, ok := first.names[m]
				if !ok {
					t.Errorf("%s: metric %s is not served by /metrics", q.where, m)
					continue
				}
				for _, l := range q.refs.Matchers[m] {
					if !labels[l] && !targetLabels[l] {
						t.Errorf("%s: %s has no label %s; it has %v", q.where, m, l, keys(labels))
					}
				}
			}
			for _, l := range q.refs.Grouping {
				if targetLabels[l] || slices.Equal(q.refs.Metrics, []string{"up"}) {
					continue
				}
				found := false
				for _, m := range q.refs.Metrics {
					found = found || first.names[m][l]
				}
				if !found {
					t.Errorf("%s: groups by %s, which none of %v has", q.where, l, q.refs.Metrics)
				}
			}
		}
	})

	t.Run("values", func(t *testing.T) {
		checks := []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"medfleet_devices", map[string]string{"profile": "infusion-pump", "connectivity": "online"}, 1},
			{"medfleet_ingest_reports_total", map[string]string{"result": "accepted"}, 1},
			{"medfleet_ingest_reports_total", map[string]string{"result": "duplicate"}, 1},
			{"medfleet_ingest_reports_total", map[string]string{"result": "rejected"}, 1},
			{"medfleet_ingest_decode_errors_total", map[string]string{"kind": "seq"}, 1},
			{"medfleet_coap_requests_total", map[string]string{"coap_method": "POST", "coap_route": "/rd", "coap_response_code": "2.01"}, 1},
			{"medfleet_coap_requests_total", map[string]string{"coap_method": "POST", "coap_route": "/dp", "coap_response_code": "4.00"}, 1},
			{"medfleet_coap_request_duration_seconds_count", map[string]string{"coap_method": "POST", "coap_route": "/dp"}, 3},
			{"medfleet_checkpoint_failures_total", nil, 0},
			{"rpc_server_call_duration_seconds_count", listDevices, 1},
			{"medfleet_build_info", nil, 1},
		}
		for _, c := range checks {
			if got := first.sum(c.name, c.labels); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
	})

	t.Run("documented", func(t *testing.T) {
		doc, err := os.ReadFile(operationsDoc)
		if err != nil {
			t.Fatal(err)
		}
		_, section, ok := strings.Cut(string(doc), "\n## Observability\n")
		if !ok {
			t.Fatalf("%s has no section ## Observability", operationsDoc)
		}
		for _, f := range first.families {
			name := f.GetName()
			if !strings.HasPrefix(name, "medfleet_") && !strings.HasPrefix(name, "rpc_") {
				continue
			}
			if !strings.Contains(section, "`"+name+"`") {
				t.Errorf("%s, section Observability, does not document `%s`", operationsDoc, name)
			}
		}
	})

	t.Run("counters move", func(t *testing.T) {
		if code := post(ctx, t, cc, "/dp", coap.FormatSenMLCBOR, report(t, 2), "ep=pump-1"); code != codes.Changed {
			t.Fatalf("POST /dp seq 2 = %v, want 2.04", code)
		}
		accepted := map[string]string{"result": "accepted"}
		before, beforeReq := first.sum("medfleet_ingest_reports_total", accepted), first.sum("medfleet_coap_requests_total", nil)
		second := scrapeUntil(ctx, t, metricsURL, func(s scrape) bool {
			return s.sum("medfleet_ingest_reports_total", accepted) > before
		})
		if got := second.sum("medfleet_ingest_reports_total", accepted); got != before+1 {
			t.Errorf("medfleet_ingest_reports_total{result=accepted} = %v after one more report, want %v", got, before+1)
		}
		if got := second.sum("medfleet_coap_requests_total", nil); got <= beforeReq {
			t.Errorf("sum(medfleet_coap_requests_total) = %v after one more request, want more than %v", got, beforeReq)
		}
	})
}

// scrape is one parsed /metrics.
type scrape struct {
	families map[string]*dto.MetricFamily
	// names maps every sample name PromQL can select (a histogram x as x,
	// x_bucket, x_sum and x_count) to the label names of its samples.
	names map[string]map[string]bool
}

func parseScrape(r io.Reader) (scrape, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return scrape{}, err
	}
	s := scrape{families: fams, names: map[string]map[string]bool{}}
	for name, f := range fams {
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		s.names[name] = labels
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			bucket := map[string]bool{"le": true}
			for l := range labels {
				bucket[l] = true
			}
			s.names[name+"_bucket"] = bucket
			s.names[name+"_sum"], s.names[name+"_count"] = labels, labels
		case dto.MetricType_SUMMARY:
			s.names[name+"_sum"], s.names[name+"_count"] = labels, labels
		}
	}
	return s, nil
}

// sum adds the samples of name whose labels include want. For a histogram
// or summary, name_count and name_sum select the count and the sum.
func (s scrape) sum(name string, want map[string]string) float64 {
	f, field := s.families[name], ""
	if f == nil {
		for _, suffix := range []string{"_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && s.families[base] != nil {
				f, field = s.families[base], suffix
			}
		}
	}
	if f == nil {
		return 0
	}
	var total float64
	for _, m := range f.GetMetric() {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Untyped != nil:
			total += m.GetUntyped().GetValue()
		case m.Histogram != nil && field == "_count":
			total += float64(m.GetHistogram().GetSampleCount())
		case m.Histogram != nil && field == "_sum":
			total += m.GetHistogram().GetSampleSum()
		case m.Summary != nil && field == "_count":
			total += float64(m.GetSummary().GetSampleCount())
		case m.Summary != nil && field == "_sum":
			total += m.GetSummary().GetSampleSum()
		}
	}
	return total
}

// scrapeUntil scrapes url until ready accepts the result; it fails the test
// when a scrape fails or ctx ends first.
func scrapeUntil(ctx context.Context, t *testing.T, url string, ready func(scrape) bool) scrape {
	t.Helper()
	for {
		s, err := get(ctx, url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		if ready(s) {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s: the wanted samples did not appear before the deadline", url)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, url string) (scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return scrape{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return scrape{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return scrape{}, fmt.Errorf("%s: %q", resp.Status, b)
	}
	return parseScrape(resp.Body)
}

func report(t *testing.T, seq uint64) []byte {
	t.Helper()
	usage := float64(3600 * seq)
	b, err := coap.EncodePack(coap.FormatSenMLCBOR, (&coap.Report{Seq: seq, Usage: &usage, State: coap.StateInUse}).Pack())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(ctx context.Context, t *testing.T, cc *udpclient.Conn, path string, cf message.MediaType, body []byte, query ...string) codes.Code {
	t.Helper()
	opts := make([]message.Option, len(query))
	for i, q := range query {
		opts[i] = message.Option{ID: message.URIQuery, Value: []byte(q)}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cc.Post(ctx, path, cf, bytes.NewReader(body), opts...)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return resp.Code()
}

func keys(m map[string]bool) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}
