package fhir

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestQueryMatchDevice(t *testing.T) {
	f := hospital(t)
	bed, _ := f.Zone("4w-401-bed")
	d := NewDevice(pump(), &bed)
	for _, tc := range []struct {
		query string
		want  bool
	}{
		{"", true},
		{"type=infusion-pump", true},
		{"type=cpap", false},
		{"type=cpap,infusion-pump", true},
		{"type=urn:medfleet:device-profile|infusion-pump", true},
		{"type=urn:other|infusion-pump", false},
		{"type=|infusion-pump", false}, // the coding has a system
		{"identifier=BME-004471", true},
		{"identifier=urn:medfleet:asset-tag|BME-004471", true},
		{"identifier=urn:medfleet:device-id|BME-004471", false},
		{"identifier=urn:medfleet:device-id|pump-0001", true},
		{"identifier=urn:medfleet:asset-tag|", true},
		{"status=active", true},
		{"status=inactive", false},
		{"status=http://hl7.org/fhir/device-status|active", true},
		{"udi-di=00885403801504", true},
		{"udi-di=0088540", true}, // a string parameter matches the start
		{"udi-di:exact=0088540", false},
		{"udi-carrier=(01)00885403801504", true},
		{"manufacturer=bd", true},
		{"manufacturer:exact=bd", false},
		{"model=alaris", true},
		{"model:contains=8015", true},
		{"model=8015", false},
		{"device-name=infusion", true},
		{"device-name=Alaris", true},
		{"location=Location/area-4w-401-bed", true},
		{"location=area-4w-401-bed", true},
		{"location=https://h/fhir/Location/area-4w-401-bed", true},
		{"location=ro-4w-401", false}, // only the zone, without the caller's tree
		{"_id=pump-0001", true},
		{"_id=pump-0002", false},
		{"type=infusion-pump&status=inactive", false},
		{"type=infusion-pump&type=cpap", false},  // both must match
		{"_sort=model&type=infusion-pump", true}, // unknown: ignored
	} {
		v, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParseQuery("Device", v, false)
		if err != nil {
			t.Errorf("ParseQuery(%q) = %v", tc.query, err)
			continue
		}
		if got := q.Match(d); got != tc.want {
			t.Errorf("ParseQuery(%q).Match(pump-0001) = %v, want %v", tc.query, got, tc.want)
		}
	}
}

func TestQueryMatchEscapes(t *testing.T) {
	d := NewDevice(&pb.Device{Name: "devices/d", Model: "A,B|C", Manufacturer: `back\slash`}, nil)
	for _, tc := range []struct {
		query string
		want  bool
	}{
		{`model:exact=A\,B|C`, true},
		{`model:exact=A,B|C`, false}, // A, or B|C
		{`model=A\,B\|C`, true},
		{`manufacturer:exact=back\\slash`, true},
	} {
		v, _ := url.ParseQuery(strings.ReplaceAll(tc.query, `\`, "%5C"))
		q, err := ParseQuery("Device", v, true)
		if err != nil {
			t.Fatalf("ParseQuery(%q) = %v", tc.query, err)
		}
		if got := q.Match(d); got != tc.want {
			t.Errorf("ParseQuery(%q).Match = %v, want %v", tc.query, got, tc.want)
		}
	}
}

func TestParseQueryErrors(t *testing.T) {
	for _, tc := range []struct {
		resource, query string
		strict          bool
		wantParam       string
		wantUnknown     bool
	}{
		{"Device", "colour=blue", true, "colour", true},
		{"Device", "type:text=pump", false, "type:text", true},
		{"Device", "model:below=x", false, "model:below", true},
		{"Device", "_count=-1", false, "_count", false},
		{"Device", "_count=many", false, "_count", false},
		{"Device", "_count=1&_count=2", false, "_count", false},
		{"Device", "_count:exact=1", false, "_count:exact", true},
		{"Device", "location=Patient/1", false, "location", false},
		{"Device", "location=bad_id", false, "location", false},
		{"Location", "partof:above=si-north", false, "partof:above", true},
		{"Patient", "", false, "resourceType", true},
	} {
		v, _ := url.ParseQuery(tc.query)
		_, err := ParseQuery(tc.resource, v, tc.strict)
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Param != tc.wantParam || pe.Unknown != tc.wantUnknown {
			t.Errorf("ParseQuery(%s?%s, strict %v) = %v, want a ParamError on %s (unknown %v)", tc.resource, tc.query, tc.strict, err, tc.wantParam, tc.wantUnknown)
		}
	}
}

func TestParseQueryLenient(t *testing.T) {
	v, _ := url.ParseQuery("colour=blue&_sort=x&type=cpap&name=&_count=900&_format=json")
	q, err := ParseQuery("Device", v, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(q.Ignored, []string{"_sort", "colour", "name"}) || len(q.Terms) != 1 || q.Count != MaxCount {
		t.Errorf("ParseQuery = ignored %v, %d terms, count %d; want _sort, colour, name ignored, 1 term, count %d", q.Ignored, len(q.Terms), q.Count, MaxCount)
	}
	// The links carry only what was applied.
	if got, want := q.Link("http://h/fhir", ""), "http://h/fhir/Device?_count=500&type=cpap"; got != want {
		t.Errorf("Link = %q, want %q", got, want)
	}
}

func TestCursor(t *testing.T) {
	parse := func(query string) *Query {
		v, _ := url.ParseQuery(query)
		q, err := ParseQuery("Device", v, false)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	q := parse("type=cpap&_count=2")
	if c, err := q.Cursor(); err != nil || c != (Cursor{}) {
		t.Fatalf("Cursor of a first page = %+v, %v; want the zero cursor", c, err)
	}
	tok := q.PageToken(Cursor{After: "cpap-0002", N: 1})
	next := parse("type=cpap&_count=5&_page=" + tok) // _count may change
	c, err := next.Cursor()
	if err != nil || c.After != "cpap-0002" || c.N != 1 {
		t.Errorf("Cursor of %s = %+v, %v; want after cpap-0002, 1", tok, c, err)
	}
	for _, query := range []string{"type=infusion-pump&_page=" + tok, "_page=" + tok, "type=cpap&_page=garbage", "type=cpap&_page=e30"} {
		if _, err := parse(query).Cursor(); err == nil {
			t.Errorf("Cursor of %s succeeded, want an error: the token is another search's or none", query)
		}
	}
	if got := parse("type=cpap").Link("http://h/fhir", tok); !strings.Contains(got, "_page="+tok) {
		t.Errorf("Link with a page = %q, want it to carry _page", got)
	}
}

func FuzzCursor(f *testing.F) {
	v, _ := url.ParseQuery("type=cpap")
	q, _ := ParseQuery("Device", v, false)
	f.Add(q.PageToken(Cursor{After: "a", N: 1}))
	f.Add("e30")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		q, err := ParseQuery("Device", url.Values{"type": {"cpap"}, "_page": {tok}}, false)
		if err != nil {
			return
		}
		c, err := q.Cursor()
		if err == nil && tok != "" && (c.After == "" || c.N < 0) {
			t.Errorf("Cursor(%q) = %+v, want an error", tok, c)
		}
	})
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"type=a,b&identifier=s|v", `model=a\,b`, "location=Location/x", "_count=3&_page=e30", `x=\`} {
		f.Add(s)
	}
	d := NewDevice(pump(), nil)
	f.Fuzz(func(t *testing.T, query string) {
		v, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for _, r := range []string{"Device", "Location", "DeviceMetric"} {
			q, err := ParseQuery(r, v, false)
			if err != nil {
				continue
			}
			if q.Count < 0 || q.Count > MaxCount {
				t.Errorf("ParseQuery(%s?%s).Count = %d", r, query, q.Count)
			}
			if r == "Device" {
				q.Match(d)
			}
		}
	})
}

// A search maps and matches every device in the caller's scope: this is
// its cost per device.
func BenchmarkDeviceSearchPerDevice(b *testing.B) {
	v, _ := url.ParseQuery("type=infusion-pump&identifier=BME-004471&udi-di=0088")
	q, err := ParseQuery("Device", v, false)
	if err != nil {
		b.Fatal(err)
	}
	d := pump()
	b.ReportAllocs()
	for b.Loop() {
		if !q.Match(NewDevice(d, nil)) {
			b.Fatal("no match")
		}
	}
}
