package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/testing/protocmp"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestListFilterBuild(t *testing.T) {
	tests := []struct {
		name    string
		f       listFilter
		want    string
		wantErr string
	}{
		{name: "none", f: listFilter{}, want: ""},
		{name: "profile", f: listFilter{profile: "cpap"}, want: `profile = "cpap"`},
		{name: "site", f: listFilter{site: "north"}, want: `site = "north"`},
		{name: "online", f: listFilter{online: true}, want: `connectivity = ONLINE`},
		{name: "offline", f: listFilter{offline: true}, want: `connectivity = OFFLINE`},
		{name: "state", f: listFilter{state: "in_use"}, want: `clinical_state = IN_USE`},
		{name: "state in capitals", f: listFilter{state: "FAULT"}, want: `clinical_state = FAULT`},
		{
			name: "every flag, in a fixed order",
			f: listFilter{
				state: "charging", offline: true, firmware: "2.4.1", model: "Alaris 8100", profile: "infusion-pump",
				labels: labelsFlag{{"unit", "4-west"}, {"floor", "4"}},
			},
			want: `profile = "infusion-pump" AND model = "Alaris 8100" AND firmware_version = "2.4.1" AND ` +
				`connectivity = OFFLINE AND clinical_state = CHARGING AND labels.unit = "4-west" AND labels.floor = "4"`,
		},
		{name: "quotes escaped", f: listFilter{model: `Say "ah" \ 2`}, want: `model = "Say \"ah\" \\ 2"`},
		{name: "empty label value", f: listFilter{labels: labelsFlag{{"bed", ""}}}, want: `labels.bed = ""`},
		{name: "raw alone", f: listFilter{raw: `serial != "X"`}, want: `serial != "X"`},
		{
			name: "raw ANDed after the flags",
			f:    listFilter{profile: "cpap", online: true, labels: labelsFlag{{"unit", "4-west"}}, raw: `  manufacturer = "ResMed" `},
			want: `profile = "cpap" AND connectivity = ONLINE AND labels.unit = "4-west" AND manufacturer = "ResMed"`,
		},
		{name: "online and offline", f: listFilter{online: true, offline: true}, wantErr: "--online and --offline exclude each other"},
		{name: "unknown state", f: listFilter{state: "asleep"}, wantErr: `--state: want idle, in_use, charging or fault, got "asleep"`},
		{name: "state with prefix", f: listFilter{state: "CLINICAL_STATE_IDLE"}, wantErr: "--state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f.build()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("build() = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("build() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestListFilterFlags parses real command lines into the filter.
func TestListFilterFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{
			args: []string{"--state", "idle", "--label", "unit=4-west", "--profile", "cpap", "--label", "floor=4", "--offline"},
			want: `profile = "cpap" AND connectivity = OFFLINE AND clinical_state = IDLE AND labels.unit = "4-west" AND labels.floor = "4"`,
		},
		{
			args: []string{"--filter", `serial = "S1"`, "--firmware=2.4.1", "--model", "ZR-200", "--online"},
			want: `model = "ZR-200" AND firmware_version = "2.4.1" AND connectivity = ONLINE AND serial = "S1"`,
		},
	}
	for _, tc := range tests {
		var f listFilter
		fl := pflag.NewFlagSet("list", pflag.ContinueOnError)
		f.add(fl)
		if err := fl.Parse(tc.args); err != nil {
			t.Fatalf("Parse(%q): %v", tc.args, err)
		}
		got, err := f.build()
		if err != nil || got != tc.want {
			t.Errorf("filter of %q = %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
}

func TestLabelsFlagSet(t *testing.T) {
	tests := []struct {
		in      string
		want    label
		wantErr bool
	}{
		{in: "unit=4-west", want: label{"unit", "4-west"}},
		{in: "bed=", want: label{"bed", ""}},
		{in: "expr=a=b", want: label{"expr", "a=b"}},
		{in: "note=two words", want: label{"note", "two words"}},
		{in: "foo", wantErr: true},
		{in: "", wantErr: true},
		{in: "=x", wantErr: true},
	}
	for _, tc := range tests {
		var f labelsFlag
		err := f.Set(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("Set(%q) = nil, want an error", tc.in)
			}
			if len(f) != 0 {
				t.Errorf("Set(%q) kept %v after an error", tc.in, f)
			}
			continue
		}
		if err != nil || len(f) != 1 || f[0] != tc.want {
			t.Errorf("Set(%q) = %v, %v; want %v", tc.in, f, err, tc.want)
		}
	}
}

func TestLabelsFlagSet_MapAndDuplicates(t *testing.T) {
	f := labelsFlag{{"unit", "4-west"}, {"floor", "4"}}
	got, err := f.set()
	if diff := cmp.Diff(map[string]string{"unit": "4-west", "floor": "4"}, got); err != nil || diff != "" {
		t.Errorf("set() error %v, mismatch (-want +got):\n%s", err, diff)
	}
	if s := f.String(); s != "unit=4-west,floor=4" {
		t.Errorf("String() = %q, want %q", s, "unit=4-west,floor=4")
	}
	dup := labelsFlag{{"unit", "4-west"}, {"unit", "4-east"}}
	if _, err := dup.set(); err == nil || !strings.Contains(err.Error(), `"unit" given twice`) {
		t.Errorf("set() of a key given twice = %v, want an error naming it", err)
	}
}

func TestParseDeviceID(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "pump-0001", want: "pump-0001"},
		{in: "devices/pump-0001", want: "pump-0001"},
		{in: "7", want: "7"},
		{in: "a.b_c-d", want: "a.b_c-d"},
		{in: strings.Repeat("x", 64), want: strings.Repeat("x", 64)},
		{in: strings.Repeat("x", 65), wantErr: true},
		{in: "", wantErr: true},
		{in: "devices/", wantErr: true},
		{in: "-pump", wantErr: true},
		{in: ".pump", wantErr: true},
		{in: "pump 1", wantErr: true},
		{in: "devices/pump/1", wantErr: true},
		{in: "rollouts/r-1", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseDeviceID(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseDeviceID(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestUpdateMask(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"none", nil, nil},
		{"one", []string{"--serial", "SN-1"}, []string{"serial"}},
		{"empty value clears", []string{"--udi", ""}, []string{"udi"}},
		{"proto order", []string{"--udi", "u", "--profile", "cpap", "--model", "m"}, []string{"profile", "model", "udi"}},
		{"site", []string{"--site", "north", "--serial", "SN-1"}, []string{"serial", "site"}},
		{"labels are not registry fields", []string{"--label", "a=1", "--remove-label", "b"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var reg registryFlags
			cmd := &cobra.Command{Use: "update"}
			reg.add(cmd)
			cmd.Flags().Var(new(labelsFlag), "label", "")
			cmd.Flags().StringArray("remove-label", nil, "")
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			got := reg.changedPaths(cmd.Flags())
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("changedPaths after %q mismatch (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestRegistryDevice(t *testing.T) {
	reg := registryFlags{profile: "cpap", model: "AirSense 11", manufacturer: "ResMed", serial: "S1", udi: "U1", site: "north"}
	want := &medfleetv1.Device{Name: "devices/cpap-1", Profile: "cpap", Model: "AirSense 11", Manufacturer: "ResMed", Serial: "S1", Udi: "U1", Site: "north"}
	got, err := reg.device("devices/cpap-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("device() mismatch (-want +got):\n%s", diff)
	}
}

func TestApplyLabels(t *testing.T) {
	cur := map[string]string{"unit": "4-west", "bed": "12", "floor": "4"}
	got := applyLabels(cur, map[string]string{"unit": "4-east", "owner": "biomed"}, []string{"bed", "absent"})
	want := map[string]string{"unit": "4-east", "floor": "4", "owner": "biomed"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("applyLabels mismatch (-want +got):\n%s", diff)
	}
	if cur["unit"] != "4-west" || cur["bed"] != "12" {
		t.Errorf("applyLabels changed its input: %v", cur)
	}
	if got := applyLabels(map[string]string{"x": "1"}, nil, []string{"x"}); len(got) != 0 {
		t.Errorf("applyLabels({x:1}, nil, [x]) = %v, want no labels", got)
	}
}

func TestNewRequestID(t *testing.T) {
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := newRequestID(), newRequestID()
	for _, id := range []string{a, b} {
		if !uuid4.MatchString(id) {
			t.Errorf("newRequestID() = %q, want a version 4 UUID", id)
		}
	}
	if a == b {
		t.Errorf("newRequestID() returned %q twice", a)
	}
}
