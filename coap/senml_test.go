package coap

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/plgd-dev/go-coap/v3/message"
)

func TestDecodePackJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Pack
		wantErr string // field named by the error; "" for success
	}{
		{
			name: "base name, unit and value",
			in:   `[{"bn":"alarm/","bu":"","bv":10,"n":"occlusion","v":2},{"n":"air-in-line","v":0}]`,
			want: Pack{{Name: "alarm/occlusion", Value: ptr(12.0)}, {Name: "alarm/air-in-line", Value: ptr(10.0)}},
		},
		{
			name: "base time adds",
			in:   `[{"bt":1700000000,"n":"seq","v":1,"t":5}]`,
			want: Pack{{Name: "seq", Time: 1700000005, Value: ptr(1.0)}},
		},
		{
			name: "sighting carries vs and v",
			in:   `[{"n":"rfid/1","vs":"e28011","v":-61,"u":"dBm"}]`,
			want: Pack{{Name: "rfid/1", Unit: "dBm", Value: ptr(-61.0), StringValue: ptr("e28011")}},
		},
		{name: "empty", in: `[]`, wantErr: "payload"},
		{name: "not an array", in: `{"n":"seq"}`, wantErr: "payload"},
		{name: "trailing", in: `[{"n":"seq","v":1}] []`, wantErr: "payload"},
		{name: "no name", in: `[{"v":1}]`, wantErr: "record[0]"},
		{name: "bad name", in: `[{"n":"/seq","v":1}]`, wantErr: "record[0]"},
		{name: "two values", in: `[{"n":"seq","v":1,"vs":"x"}]`, wantErr: `record[0] "seq"`},
		{name: "no value", in: `[{"n":"seq"}]`, wantErr: `record[0] "seq"`},
		{name: "data value", in: `[{"n":"blob","vd":"AAEC"}]`, wantErr: `record[0] "blob"`},
		{name: "sum", in: `[{"n":"energy","s":4}]`, wantErr: `record[0] "energy"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePack(FormatSenMLJSON, []byte(tc.in))
			if tc.wantErr != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tc.wantErr {
					t.Fatalf("DecodePack(%s) = %v, want an error on %s", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodePack(%s): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DecodePack(%s) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestDecodePackCBOR(t *testing.T) {
	b, err := EncodePack(FormatSenMLCBOR, Pack{Float("seq", "", 7), Float("usage", "s", 3600.5), String("state", "in_use")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePack(FormatSenMLCBOR, b)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseReport(got)
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 7 || *r.Usage != 3600.5 || r.State != StateInUse {
		t.Errorf("round trip = %+v, want seq 7, usage 3600.5, in_use", r)
	}

	// Labels are integers: a text-keyed map is not SenML-CBOR.
	textKeyed, _ := cborEnc.Marshal([]map[string]any{{"n": "seq", "v": 1}})
	if _, err := DecodePack(FormatSenMLCBOR, textKeyed); err == nil {
		t.Errorf("DecodePack(text-keyed CBOR) succeeded, want an error")
	}
	// Duplicate keys are refused.
	dup, _ := hex.DecodeString("81a200637365710001") // [{0:"seq", 0:1}]
	if _, err := DecodePack(FormatSenMLCBOR, dup); err == nil {
		t.Errorf("DecodePack(duplicate key) succeeded, want an error")
	}
	if _, err := DecodePack(message.AppOctets, b); err == nil {
		t.Errorf("DecodePack(octet-stream) succeeded, want an error")
	}
}

func TestParseReport(t *testing.T) {
	tests := []struct {
		name      string
		pack      Pack
		wantField string // "" for success
		check     func(*Report) bool
	}{
		{name: "minimal", pack: Pack{Float("seq", "", 1)}, check: func(r *Report) bool { return r.Seq == 1 && r.Usage == nil }},
		{name: "everything", pack: Pack{
			Float("seq", "", 9), Float("usage", "s", 100), String("fw", "2.1.0"), String("state", "charging"),
			Float("battery", "%EL", 55), String("wifi/bssid", "AA:BB:CC:00:11:22"), Float("wifi/rssi", "dBm", -60),
			Float("alarm/occlusion", "", 3), Float("fw/state", "", 0), Float("fw/result", "", 1), Float("blower/pressure", "cmH2O", 9.5),
			String("note", "ignored"),
		}, check: func(r *Report) bool {
			return r.Seq == 9 && *r.Usage == 100 && r.Firmware == "2.1.0" && r.State == StateCharging && *r.Battery == 55 &&
				r.WiFiBSSID == "aa:bb:cc:00:11:22" && *r.WiFiRSSI == -60 && r.Alarms["occlusion"] == 3 &&
				*r.FirmwareState == 0 && *r.FirmwareResult == 1 && r.Telemetry["blower/pressure"] == 9.5 && len(r.Telemetry) == 1
		}},
		{name: "sighting", pack: Pack{Float("seq", "", 1), {Name: "rfid/2", Value: ptr(-70.0), StringValue: ptr("e2801160600002")}},
			check: func(r *Report) bool {
				return len(r.Sightings) == 1 && r.Sightings[0] == Sighting{Antenna: "2", EPC: "E2801160600002", RSSI: -70}
			}},
		{name: "no seq", pack: Pack{Float("usage", "s", 1)}, wantField: "seq"},
		{name: "seq zero", pack: Pack{Float("seq", "", 0)}, wantField: "seq"},
		{name: "seq fraction", pack: Pack{Float("seq", "", 1.5)}, wantField: "seq"},
		{name: "seq as string", pack: Pack{String("seq", "1")}, wantField: "seq"},
		{name: "usage negative", pack: Pack{Float("seq", "", 1), Float("usage", "s", -1)}, wantField: "usage"},
		{name: "usage in hours", pack: Pack{Float("seq", "", 1), Float("usage", "h", 1)}, wantField: "usage"},
		{name: "bad state", pack: Pack{Float("seq", "", 1), String("state", "sleeping")}, wantField: "state"},
		{name: "battery over 100", pack: Pack{Float("seq", "", 1), Float("battery", "%EL", 101)}, wantField: "battery"},
		{name: "fw result 12", pack: Pack{Float("seq", "", 1), Float("fw/result", "", 12)}, wantField: "fw/result"},
		{name: "fw state 4", pack: Pack{Float("seq", "", 1), Float("fw/state", "", 4)}, wantField: "fw/state"},
		{name: "negative alarm", pack: Pack{Float("seq", "", 1), Float("alarm/x", "", -1)}, wantField: "alarm/x"},
		{name: "sighting without EPC", pack: Pack{Float("seq", "", 1), Float("rfid/1", "dBm", -50)}, wantField: "rfid/1"},
		{name: "sighting odd hex", pack: Pack{Float("seq", "", 1), {Name: "rfid/1", Value: ptr(-50.0), StringValue: ptr("abc")}}, wantField: "rfid/1"},
		{name: "sighting not hex", pack: Pack{Float("seq", "", 1), {Name: "rfid/1", Value: ptr(-50.0), StringValue: ptr("zz")}}, wantField: "rfid/1"},
		{name: "no antenna", pack: Pack{Float("seq", "", 1), {Name: "rfid/", Value: ptr(-50.0), StringValue: ptr("aa")}}, wantField: "rfid/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReport(tc.pack)
			if tc.wantField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tc.wantField {
					t.Fatalf("ParseReport() = %v, want an error on %s", err, tc.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseReport(): %v", err)
			}
			if !tc.check(r) {
				t.Errorf("ParseReport() = %+v, not what the pack says", r)
			}
			// Pack() is the inverse of ParseReport for understood records.
			again, err := ParseReport(r.Pack())
			if err != nil {
				t.Fatalf("ParseReport(Pack()): %v", err)
			}
			if diff := cmp.Diff(r, again); diff != "" {
				t.Errorf("ParseReport(Pack()) (-first +again):\n%s", diff)
			}
		})
	}
}

func TestTelemetryBound(t *testing.T) {
	p := Pack{Float("seq", "", 1)}
	for i := range maxTelemetry + 1 {
		p = append(p, Float("t"+hex.EncodeToString([]byte{byte(i)}), "", 1))
	}
	if _, err := ParseReport(p); err == nil {
		t.Errorf("ParseReport(%d telemetry records) succeeded, want an error", maxTelemetry+1)
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzDecodeReport feeds arbitrary bytes to both SenML decoders and the
// report parser: they must never panic, and a pack they accept must survive
// a round trip.
func FuzzDecodeReport(f *testing.F) {
	seed, _ := EncodePack(FormatSenMLCBOR, Pack{Float("seq", "", 1), Float("usage", "s", 10), String("state", "idle")})
	f.Add(seed, true)
	f.Add([]byte(`[{"bn":"alarm/","n":"x","v":1},{"n":"seq","v":2},{"n":"rfid/1","vs":"aa","v":-3}]`), false)
	f.Add([]byte(`[{"n":"seq","v":1e300}]`), false)
	f.Add([]byte{0x9f, 0xa1, 0x00, 0x63, 's', 'e', 'q', 0xff}, true)
	f.Fuzz(func(t *testing.T, data []byte, asCBOR bool) {
		format := FormatSenMLJSON
		if asCBOR {
			format = FormatSenMLCBOR
		}
		pack, err := DecodePack(format, data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("DecodePack error %v is not a FieldError", err)
			}
			return
		}
		r, err := ParseReport(pack)
		if err != nil {
			return
		}
		b, err := EncodePack(format, r.Pack())
		if err != nil {
			t.Fatalf("EncodePack: %v", err)
		}
		back, err := DecodePack(format, b)
		if err != nil {
			t.Fatalf("DecodePack(EncodePack(%+v)): %v", r, err)
		}
		if _, err := ParseReport(back); err != nil {
			t.Fatalf("ParseReport after round trip: %v", err)
		}
	})
}
