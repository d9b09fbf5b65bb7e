package inventory

import (
	"testing"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		in      string
		want    string // canonical form; "" with wantErr
		wantErr bool
	}{
		{in: "", want: ""},
		{in: `profile = "cpap"`, want: `profile = "cpap"`},
		{in: `profile=cpap`, want: `profile = "cpap"`},
		{in: `connectivity = online AND clinical_state = CLINICAL_STATE_IN_USE`, want: `connectivity = "ONLINE" AND clinical_state = "IN_USE"`},
		{in: `labels.unit != "4 west"`, want: `labels.unit != "4 west"`},
		{in: `firmware_version = "2.1.0" AND model = "Alaris 8100"`, want: `firmware_version = "2.1.0" AND model = "Alaris 8100"`},
		{in: "labels.unit:a/b = x-y\r\nAND model = \"a\\\"b\\\\\"", want: `labels.unit:a/b = "x-y" AND model = "a\"b\\"`},
		// Go's escapes, and a newline written raw, come out as
		// strconv.Quote writes them.
		{in: `model = "\x41\tb\u00e9"`, want: `model = "A\tbé"`},
		{in: "model = \"a\nb\"", want: `model = "a\nb"`},
		{in: `color = "red"`, wantErr: true},
		{in: `profile < "cpap"`, wantErr: true},
		{in: `profile = "a\qb"`, wantErr: true},
		{in: `profile = = "cpap"`, wantErr: true},
		{in: `connectivity = MAYBE`, wantErr: true},
		{in: `profile =`, wantErr: true},
		{in: `profile "cpap"`, wantErr: true},
		{in: `profile = "cpap" OR model = "x"`, wantErr: true},
		{in: `profile = "cpap`, wantErr: true},
		{in: `labels. = "x"`, wantErr: true},
		{in: `profile ! "x"`, wantErr: true},
		{in: `(profile = "x")`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			f, err := ParseFilter(tc.in)
			if tc.wantErr {
				if !isField(err, "filter") {
					t.Errorf("ParseFilter(%q) = %v, want a field error on filter", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFilter(%q): %v", tc.in, err)
			}
			if got := f.String(); got != tc.want {
				t.Errorf("ParseFilter(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	d := &pb.Device{Profile: "cpap", Model: "AirSense 11", Udi: "(01)00885403210016", Labels: map[string]string{"unit": "sleep-lab"}}
	st := &pb.DeviceStatus{FirmwareVersion: "3.1", ClinicalState: pb.ClinicalState_CLINICAL_STATE_IN_USE}
	tests := []struct {
		filter string
		want   bool
	}{
		{filter: `profile = "cpap"`, want: true},
		{filter: `profile = "cpap" AND connectivity = OFFLINE`, want: false},
		{filter: `connectivity = ONLINE AND clinical_state = IN_USE`, want: true},
		{filter: `firmware_version != "3.1"`, want: false},
		{filter: `labels.unit = "sleep-lab"`, want: true},
		{filter: `labels.floor = ""`, want: true},
		{filter: `udi = "(01)00885403210016"`, want: true},
	}
	for _, tc := range tests {
		f, err := ParseFilter(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.match(d, st, func() pb.Connectivity { return pb.Connectivity_CONNECTIVITY_ONLINE }); got != tc.want {
			t.Errorf("match(%q) = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{`profile = "cpap"`, `connectivity = ONLINE AND labels.a != "b"`, `x = "\"`, `!=`, `a = b AND`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			if !isField(err, "filter") {
				t.Fatalf("ParseFilter(%q) = %v, want a field error on filter", s, err)
			}
			return
		}
		// The canonical form parses back to itself.
		again, err := ParseFilter(flt.String())
		if err != nil || again.String() != flt.String() {
			t.Fatalf("ParseFilter(%q).String() = %q does not round-trip: %v", s, flt.String(), err)
		}
	})
}

func FuzzDecodePageToken(f *testing.F) {
	q := queryDigest("", false)
	f.Add(encodePageToken(pageToken{After: "pump-1", Query: q}))
	f.Add("garbage")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		after, err := decodePageToken(s, q)
		if err != nil {
			if !isField(err, "page_token") {
				t.Fatalf("decodePageToken(%q) = %v, want a field error on page_token", s, err)
			}
			return
		}
		if s != "" && after == "" {
			t.Fatalf("decodePageToken(%q) accepted a token with no position", s)
		}
	})
}
