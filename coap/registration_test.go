package coap

import (
	"errors"
	"github.com/plgd-dev/go-coap/v3/message"
	"strings"
	"testing"
)

func TestDecodeRegistration(t *testing.T) {
	cbor, _ := (&Registration{Model: "AirSense 11", Serial: "2211", Firmware: "SW04", Profile: "cpap"}).Encode(FormatCBOR)
	tests := []struct {
		name      string
		format    uint16
		in        []byte
		want      Registration
		wantField string
		full      bool // also Validate as a POST /rd
	}{
		{name: "cbor", format: 60, in: cbor, want: Registration{Model: "AirSense 11", Serial: "2211", Firmware: "SW04", Profile: "cpap"}, full: true},
		{name: "json", format: 50, in: []byte(`{"model":"Alaris 8100","profile":"infusion-pump","udi":"(01)00885403210016","extra":1}`),
			want: Registration{Model: "Alaris 8100", Profile: "infusion-pump", UDI: "(01)00885403210016"}, full: true},
		{name: "empty update", format: 60, in: nil},
		{name: "not a map", format: 50, in: []byte(`[1]`), wantField: "payload"},
		{name: "wrong type", format: 50, in: []byte(`{"model":5}`), wantField: "payload"},
		{name: "bad profile", format: 50, in: []byte(`{"profile":"Infusion Pump"}`), wantField: "profile"},
		{name: "too long", format: 50, in: []byte(`{"serial":"` + strings.Repeat("x", 129) + `"}`), wantField: "serial"},
		{name: "control char", format: 50, in: []byte(`{"fw":"1.0\u0007"}`), wantField: "fw"},
		{name: "other format", format: 112, in: []byte(`{}`), wantField: "content-format"},
		{name: "no model at registration", format: 50, in: []byte(`{"profile":"cpap"}`), wantField: "model", full: true},
		{name: "no profile at registration", format: 50, in: []byte(`{"model":"x"}`), wantField: "profile", full: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeRegistration(message.MediaType(tc.format), tc.in)
			if err == nil && tc.full {
				err = got.Validate()
			}
			if tc.wantField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tc.wantField {
					t.Fatalf("DecodeRegistration(%q) = %v, want an error on %s", tc.in, err, tc.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeRegistration(%q): %v", tc.in, err)
			}
			if *got != tc.want {
				t.Errorf("DecodeRegistration(%q) = %+v, want %+v", tc.in, *got, tc.want)
			}
		})
	}
}

func FuzzDecodeRegistration(f *testing.F) {
	seed, _ := (&Registration{Model: "m", Profile: "cpap"}).Encode(FormatCBOR)
	f.Add(seed, true)
	f.Add([]byte(`{"model":"m","profile":"infusion-pump","fw":"1"}`), false)
	f.Fuzz(func(t *testing.T, data []byte, asCBOR bool) {
		format := FormatJSON
		if asCBOR {
			format = FormatCBOR
		}
		reg, err := DecodeRegistration(format, data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("DecodeRegistration error %v is not a FieldError", err)
			}
			return
		}
		b, err := reg.Encode(format)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeRegistration(format, b)
		if err != nil || *back != *reg {
			t.Fatalf("round trip of %+v = %+v, %v", reg, back, err)
		}
	})
}

func TestValidateDeviceID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"pump-4471", true}, {"PUMP_4471.a", true}, {"a", true}, {strings.Repeat("a", 64), true},
		{"", false}, {"-pump", false}, {"pump 1", false}, {"pump/1", false}, {strings.Repeat("a", 65), false}, {"pümp", false},
	} {
		if err := ValidateDeviceID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidateDeviceID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

func FuzzDecodeDesired(f *testing.F) {
	seed, _ := (&Desired{Seq: 7, Interval: 10, Firmware: &FirmwareTarget{Version: "2", SHA256: "ab", Size: 1}}).Encode(FormatCBOR)
	f.Add(seed, true)
	f.Add([]byte(`{"seq":1,"interval":10}`), false)
	f.Fuzz(func(t *testing.T, data []byte, asCBOR bool) {
		format := FormatJSON
		if asCBOR {
			format = FormatCBOR
		}
		d, err := DecodeDesired(format, data)
		if err != nil {
			return
		}
		b, err := d.Encode(format)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeDesired(format, b); err != nil {
			t.Fatalf("round trip of %+v: %v", d, err)
		}
	})
}
