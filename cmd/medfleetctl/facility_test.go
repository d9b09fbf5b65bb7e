package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// hospitalFile is the sample facility, which the location tests apply.
const hospitalFile = "../../examples/facility/hospital.yaml"

// applyHospital applies the sample facility.
func applyHospital(t *testing.T, s *testServer) {
	t.Helper()
	if out := s.mustRun(t, "facility", "apply", "-f", hospitalFile); !strings.HasPrefix(out, "applied "+hospitalFile+": ") {
		t.Fatalf("facility apply -f %s = %q, want applied ...", hospitalFile, out)
	}
}

// writeTestFile writes a file in dir and returns its path.
func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// smallFacility has one room of two zones, a reader and an access point.
const smallFacility = `sites:
  - id: north
    name: North Campus
    buildings:
      - id: main
        name: Main Building
        floors:
          - id: main-4
            name: Floor 4
            level: 4
            units:
              - id: 4-west
                name: 4 West
                par:
                  infusion-pump: 2
                rooms:
                  - id: 4w-401
                    name: Room 401
                    zones:
                      - {id: 4w-401-bed, name: Bed, x: 0, y: 0, w: 4, h: 3}
                      - {id: 4w-401-entry, name: Entry, x: 0, y: 3, w: 4, h: 2}
readers:
  - device: rfid-1
    antennas: {"1": 4w-401-bed}
access_points:
  - {bssid: "0a:1b:2c:3d:4e:5f", zone: 4w-401-entry}
`

func TestFacilityProblems(t *testing.T) {
	violations := func(fields ...string) *errdetails.BadRequest {
		br := &errdetails.BadRequest{}
		for i := 0; i < len(fields); i += 2 {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: fields[i], Description: fields[i+1]})
		}
		return br
	}
	one := withDetails(t, status.New(codes.InvalidArgument, "yaml: line 4: sites[0].bogus: unknown field"),
		violations("yaml", "line 4: sites[0].bogus: unknown field"))
	two := withDetails(t, status.New(codes.InvalidArgument, "yaml: line 2: sites[0].id: bad; line 20: zones[0].w: must be positive"),
		violations("yaml", "line 2: sites[0].id: bad", "yaml", "line 20: zones[0].w: must be positive"))
	etag := withDetails(t, status.New(codes.InvalidArgument, `etag: "x" is not an etag this server returned`),
		violations("etag", `"x" is not an etag this server returned`))
	aborted := status.Error(codes.Aborted, "the facility changed since it was read")
	plain := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want []string // errorLines of the result
	}{
		{"one problem, one line", one, []string{"invalid argument: f.yaml: line 4: sites[0].bogus: unknown field"}},
		{"two problems, one a line", two, []string{
			"invalid argument: f.yaml: 2 problems",
			"  f.yaml: line 2: sites[0].id: bad",
			"  f.yaml: line 20: zones[0].w: must be positive",
		}},
		{"not about the document", etag, []string{`invalid argument: etag: "x" is not an etag this server returned`}},
		{"not invalid argument", aborted, []string{"aborted: the facility changed since it was read"}},
		{"not a status", plain, []string{"boom"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := facilityProblems(tc.err, "f.yaml")
			if diff := cmp.Diff(tc.want, errorLines(got, "-")); diff != "" {
				t.Errorf("errorLines(facilityProblems(%v)) mismatch (-want +got):\n%s", tc.err, diff)
			}
			if exitCode(got) != exitCode(tc.err) {
				t.Errorf("exitCode(facilityProblems(%v)) = %d, want %d as before", tc.err, exitCode(got), exitCode(tc.err))
			}
		})
	}
}

func TestWriteApplied(t *testing.T) {
	f := &medfleetv1.Facility{Zones: 64, Readers: 1, AccessPoints: 8, Etag: "912"}
	tests := []struct {
		dryRun bool
		want   string
	}{
		{false, "applied h.yaml: 64 zones, 1 reader, 8 access points\netag: 912\n"},
		{true, "h.yaml is valid: 64 zones, 1 reader, 8 access points (dry run: nothing applied)\n"},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := writeApplied(&b, "h.yaml", f, tc.dryRun); err != nil || b.String() != tc.want {
			t.Errorf("writeApplied(dry run %v) = %q, %v; want %q", tc.dryRun, b.String(), err, tc.want)
		}
	}
}

func TestWriteFacilityYAML(t *testing.T) {
	tests := []struct {
		doc, want string
		wantErr   bool
	}{
		{doc: "sites: []\n", want: "sites: []\n"},
		{doc: "# comment kept\nsites: []", want: "# comment kept\nsites: []\n"},
		{doc: "", wantErr: true},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		err := writeFacilityYAML(&b, &medfleetv1.Facility{Yaml: tc.doc})
		if (err != nil) != tc.wantErr || b.String() != tc.want {
			t.Errorf("writeFacilityYAML(%q) = %q, %v; want %q, error %v", tc.doc, b.String(), err, tc.want, tc.wantErr)
		}
	}
}

// TestFacility applies facilities to a real server: a dry run, the sample
// hospital, a round trip through "facility get", a stale etag and
// documents the server refuses.
func TestFacility(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()

	code, _, stderr := s.run(t, "facility", "get")
	if code != exitNotFound || !strings.Contains(stderr, "no facility has been applied") {
		t.Errorf("facility get before any apply = %d, %q; want %d", code, stderr, exitNotFound)
	}

	// A dry run counts and applies nothing.
	small := writeTestFile(t, dir, "small.yaml", smallFacility)
	out := s.mustRun(t, "facility", "apply", "-f", small, "--dry-run")
	if want := small + " is valid: 2 zones, 1 reader, 1 access point (dry run: nothing applied)\n"; out != want {
		t.Errorf("facility apply --dry-run = %q, want %q", out, want)
	}
	if code, _, _ := s.run(t, "facility", "get"); code != exitNotFound {
		t.Errorf("facility get after a dry run = %d, want %d: nothing applied", code, exitNotFound)
	}

	// The sample hospital.
	hospital, err := os.ReadFile(hospitalFile)
	if err != nil {
		t.Fatal(err)
	}
	var checked medfleetv1.Facility
	s.mustJSON(t, &checked, "facility", "apply", "-f", hospitalFile, "--dry-run")
	if checked.GetZones() < 10 || checked.GetReaders() < 1 || checked.GetAccessPoints() < 1 {
		t.Errorf("facility apply --dry-run -o json of the sample = %d zones, %d readers, %d access points; want a hospital's worth",
			checked.GetZones(), checked.GetReaders(), checked.GetAccessPoints())
	}
	out = s.mustRun(t, "facility", "apply", "-f", hospitalFile)
	counts := fmt.Sprintf("applied %s: %d zones, %d readers, %d access points\n", hospitalFile, checked.GetZones(), checked.GetReaders(), checked.GetAccessPoints())
	if !strings.HasPrefix(out, counts) {
		t.Errorf("facility apply = %q, want it to start %q", out, counts)
	}
	etag := keyValue(t, out, "etag")

	// get gives back the document as applied, comments and all, and
	// applies again.
	got := s.mustRun(t, "facility", "get")
	if diff := cmp.Diff(string(hospital), got); diff != "" {
		t.Errorf("facility get mismatch with %s (-want +got):\n%s", hospitalFile, diff)
	}
	var f medfleetv1.Facility
	s.mustJSON(t, &f, "facility", "get")
	if f.GetYaml() != string(hospital) || f.GetEtag() != etag || f.GetZones() != checked.GetZones() || f.GetUpdateTime() == nil {
		t.Errorf("facility get -o json = etag %q, %d zones, update time %v; want etag %q, %d zones, the document", f.GetEtag(), f.GetZones(), f.GetUpdateTime(), etag, checked.GetZones())
	}
	if yamlOut := s.mustRun(t, "facility", "get", "-o", "yaml"); yamlOut != got {
		t.Errorf("facility get -o yaml differs from facility get")
	}
	roundTrip := writeTestFile(t, dir, "f.yaml", got)
	out = s.mustRun(t, "facility", "apply", "-f", roundTrip, "--etag", etag)
	if newEtag := keyValue(t, out, "etag"); newEtag == etag {
		t.Errorf("facility apply of the round trip: etag still %s", etag)
	}
	code, stdout, stderr := s.run(t, "facility", "apply", "-f", roundTrip, "--etag", etag)
	if code != exitFailedPrecondition || stdout != "" || !strings.HasPrefix(stderr, "medfleetctl: aborted: ") {
		t.Errorf("facility apply with a stale etag = %d, %q, %q; want %d, aborted", code, stdout, stderr, exitFailedPrecondition)
	}

	// Refused documents: every problem on a line of its own, naming the
	// file and the line; nothing applied, dry run or not.
	bad := strings.Replace(strings.Replace(smallFacility, "id: north", "id: North", 1), "w: 4, h: 3", "w: 0, h: 3", 1)
	badFile := writeTestFile(t, dir, "bad.yaml", bad)
	for _, args := range [][]string{{"facility", "apply", "-f", badFile}, {"facility", "apply", "-f", badFile, "--dry-run"}} {
		code, stdout, stderr := s.run(t, args...)
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if code != exitInvalidArgument || stdout != "" || len(lines) != 3 {
			t.Fatalf("%q = %d, %q, %q; want %d and three lines on stderr", args, code, stdout, stderr, exitInvalidArgument)
		}
		for i, want := range []string{
			"medfleetctl: invalid argument: " + badFile + ": 2 problems",
			"  " + badFile + `: line 2: sites[0].id: "North" is not an id`,
			"  " + badFile + ": line 20: sites[0].buildings[0].floors[0].units[0].rooms[0].zones[0].w: ",
		} {
			if !strings.HasPrefix(lines[i], want) {
				t.Errorf("%q stderr line %d = %q, want it to start %q", args, i+1, lines[i], want)
			}
		}
	}
	unknown := writeTestFile(t, dir, "unknown.yaml", strings.Replace(smallFacility, "    name: North Campus\n", "    name: North Campus\n    colour: blue\n", 1))
	code, _, stderr = s.run(t, "facility", "apply", "-f", unknown)
	if want := "medfleetctl: invalid argument: " + unknown + ": line 4: sites[0].colour: "; code != exitInvalidArgument ||
		!strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("facility apply of a document with one unknown key = %d, %q; want %d, one line starting %q", code, stderr, exitInvalidArgument, want)
	}
	if after := s.mustRun(t, "facility", "get"); after != got {
		t.Errorf("a refused document changed the facility")
	}
}
