package observability

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// refs is what a PromQL expression refers to: enough to check it against a
// scrape, not a parser of the language.
type refs struct {
	// Metrics are the metric names the expression selects, sorted.
	Metrics []string
	// Matchers maps a metric name to the label names its selectors match on.
	Matchers map[string][]string
	// Grouping are the label names of by, without, on, ignoring, group_left
	// and group_right lists, sorted.
	Grouping []string
}

// Names that are never metric names where they stand before "(" or "by".
var (
	promAggregators = set("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
		"bottomk", "topk", "quantile", "limitk", "limit_ratio")
	promFunctions = set("abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
		"avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time",
		"day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv",
		"double_exponential_smoothing", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
		"histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour",
		"idelta", "increase", "info", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10",
		"log2", "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
		"present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin",
		"sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "stddev_over_time",
		"stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
		"start", "end") // start() and end() of the @ modifier
	// promKeywords are compared in lower case: PromQL's keywords ignore case.
	promKeywords  = set("and", "or", "unless", "offset", "bool", "atan2", "inf", "nan")
	promGroupings = set("by", "without", "on", "ignoring", "group_left", "group_right")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || ('0' <= c && c <= '9') }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// promRefs returns the metric names, matcher labels and grouping labels of
// a PromQL expression as written in a dashboard or a rules file. It skips
// strings, numbers and durations, range and subquery brackets, comments and
// Grafana variables ($x, ${x}); an identifier followed by "(" must be a known
// function, so that a misspelt function is an error rather than a metric.
func promRefs(expr string) (refs, error) {
	r := refs{Matchers: map[string][]string{}}
	s := expr
	i := 0
	skipSpace := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	ident := func() string {
		start := i
		for i < len(s) && isIdentChar(s[i]) {
			i++
		}
		return s[start:i]
	}
	for i < len(s) {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == '#': // comment to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, i)
			if err != nil {
				return refs{}, err
			}
			i = end
		case c == '$': // Grafana variable
			i++
			if i < len(s) && s[i] == '{' {
				end := strings.IndexByte(s[i:], '}')
				if end < 0 {
					return refs{}, fmt.Errorf("offset %d: unterminated ${", i)
				}
				i += end + 1
			} else {
				ident()
			}
		case c == '[': // range or subquery: durations and variables only
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return refs{}, fmt.Errorf("offset %d: unterminated [", i)
			}
			i += end + 1
		case c == '{':
			return refs{}, fmt.Errorf("offset %d: selector without a metric name", i)
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			i = skipNumber(s, i)
		case isIdentStart(c):
			name := ident()
			lower := strings.ToLower(name)
			skipSpace()
			switch {
			case promGroupings[lower]:
				if i < len(s) && s[i] == '(' {
					labels, end, err := labelList(s, i)
					if err != nil {
						return refs{}, err
					}
					r.Grouping = append(r.Grouping, labels...)
					i = end
				}
			case promKeywords[lower], promAggregators[name]:
			case i < len(s) && s[i] == '(':
				if !promFunctions[name] {
					return refs{}, fmt.Errorf("offset %d: %s( is not a PromQL function", i-len(name), name)
				}
			default:
				r.Metrics = append(r.Metrics, name)
				if i < len(s) && s[i] == '{' {
					labels, end, err := matcherLabels(s, i)
					if err != nil {
						return refs{}, err
					}
					r.Matchers[name] = append(r.Matchers[name], labels...)
					i = end
				}
			}
		default: // operators, parentheses, commas, @
			i++
		}
	}
	r.Metrics = sortedUnique(r.Metrics)
	r.Grouping = sortedUnique(r.Grouping)
	for k, v := range r.Matchers {
		r.Matchers[k] = sortedUnique(v)
	}
	return r, nil
}

// skipString returns the offset just after the string literal at s[i].
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("offset %d: unterminated string", i)
}

// skipNumber returns the offset just after the number or duration at s[i]:
// 42, 0.5, 1e-3, 0x1f, 5m, 1h30m.
func skipNumber(s string, i int) int {
	start := i
	for i < len(s) {
		c := s[i]
		switch {
		case isIdentChar(c) && c != ':' || c == '.':
			i++
		case (c == '+' || c == '-') && (s[i-1] == 'e' || s[i-1] == 'E') && !strings.HasPrefix(s[start:], "0x"):
			i++
		default:
			return i
		}
	}
	return i
}

// labelList parses "(a, b)" at s[i] and returns the names and the offset
// after ")".
func labelList(s string, i int) ([]string, int, error) {
	var labels []string
	i++ // (
	for {
		for i < len(s) && (isSpace(s[i]) || s[i] == ',') {
			i++
		}
		if i == len(s) {
			return nil, 0, fmt.Errorf("offset %d: unterminated label list", i)
		}
		if s[i] == ')' {
			return labels, i + 1, nil
		}
		start := i
		for i < len(s) && isIdentChar(s[i]) {
			i++
		}
		if start == i {
			return nil, 0, fmt.Errorf("offset %d: %q in a label list", i, s[i])
		}
		labels = append(labels, s[start:i])
	}
}

// matcherLabels parses `{a="x", b=~"y"}` at s[i] and returns the label names
// and the offset after "}".
func matcherLabels(s string, i int) ([]string, int, error) {
	var labels []string
	i++ // {
	for {
		for i < len(s) && (isSpace(s[i]) || s[i] == ',') {
			i++
		}
		if i == len(s) {
			return nil, 0, fmt.Errorf("offset %d: unterminated selector", i)
		}
		if s[i] == '}' {
			return labels, i + 1, nil
		}
		start := i
		for i < len(s) && isIdentChar(s[i]) {
			i++
		}
		if start == i {
			return nil, 0, fmt.Errorf("offset %d: %q where a label name should be", i, s[i])
		}
		labels = append(labels, s[start:i])
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		switch {
		case strings.HasPrefix(s[i:], "=~"), strings.HasPrefix(s[i:], "!="), strings.HasPrefix(s[i:], "!~"):
			i += 2
		case strings.HasPrefix(s[i:], "="):
			i++
		default:
			return nil, 0, fmt.Errorf("offset %d: no matching operator after label %s", i, s[start:i])
		}
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) || (s[i] != '"' && s[i] != '\'' && s[i] != '`') {
			return nil, 0, fmt.Errorf("offset %d: label %s: value is not a string", i, labels[len(labels)-1])
		}
		end, err := skipString(s, i)
		if err != nil {
			return nil, 0, err
		}
		i = end
	}
}

func sortedUnique(v []string) []string {
	slices.Sort(v)
	return slices.Compact(v)
}

func TestPromRefs(t *testing.T) {
	tests := []struct {
		name    string
		expr    string
		want    refs
		wantErr string
	}{
		{
			name: "selector and comparison",
			expr: `up{job="medfleetd"} == 0`,
			want: refs{Metrics: []string{"up"}, Matchers: map[string][]string{"up": {"job"}}},
		},
		{
			name: "ratio with or vector and Grafana variables",
			expr: `(sum(medfleet_devices{instance=~"$instance", connectivity="online"}) or vector(0)) / sum(medfleet_devices{instance=~"${instance}"})`,
			want: refs{Metrics: []string{"medfleet_devices"}, Matchers: map[string][]string{"medfleet_devices": {"connectivity", "instance"}}},
		},
		{
			name: "histogram quantile with by before the argument",
			expr: `histogram_quantile(0.99, sum by (le, op) (rate(medfleet_etcd_txn_duration_seconds_bucket[$__rate_interval])))`,
			want: refs{Metrics: []string{"medfleet_etcd_txn_duration_seconds_bucket"}, Grouping: []string{"le", "op"}},
		},
		{
			name: "by after the argument, vector matching",
			expr: "sum(rate(a_total[5m])) by (instance)\n/ ignoring(result) group_left(profile) sum without (result) (b)\nand on() c > bool 1",
			want: refs{Metrics: []string{"a_total", "b", "c"}, Grouping: []string{"instance", "profile", "result"}},
		},
		{
			name: "strings, durations and numbers are not metrics",
			expr: `label_replace(foo{x="a{b}c, d=\"e\""}, "dst", "$1 bar", 'src', ` + "`(.*)`" + `) * 1e-3 + 0x1f - .5 + 2E+3 + Inf - NaN`,
			want: refs{Metrics: []string{"foo"}, Matchers: map[string][]string{"foo": {"x"}}},
		},
		{
			name: "offset, subquery, @ and comments",
			expr: "max_over_time(rate(z[1m] offset 1h30m)[10m:30s] @ end()) # not_a_metric{x=\"y\"}\n+ y",
			want: refs{Metrics: []string{"y", "z"}},
		},
		{
			name: "keywords ignore case, aggregations with parameters",
			expr: `topk(5, count_values("version", medfleet_build_info)) AND quantile(0.9, x) OR bottomk(1, y)`,
			want: refs{Metrics: []string{"medfleet_build_info", "x", "y"}},
		},
		{
			name: "recording rule names and duplicates",
			expr: `job:medfleet_reports:rate5m + job:medfleet_reports:rate5m`,
			want: refs{Metrics: []string{"job:medfleet_reports:rate5m"}},
		},
		{
			name:    "unknown function",
			expr:    `rat(x[5m])`,
			wantErr: "rat( is not a PromQL function",
		},
		{
			name:    "unterminated selector",
			expr:    `foo{a="b"`,
			wantErr: "unterminated",
		},
		{
			name:    "selector without a name",
			expr:    `{__name__="foo"}`,
			wantErr: "without a metric name",
		},
		{
			name:    "unquoted label value",
			expr:    `foo{a=b}`,
			wantErr: "not a string",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := promRefs(tc.expr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("promRefs(%q) = %+v, %v; want an error containing %q", tc.expr, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("promRefs(%q): %v", tc.expr, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("promRefs(%q) mismatch (-want +got):\n%s", tc.expr, diff)
			}
		})
	}
}
