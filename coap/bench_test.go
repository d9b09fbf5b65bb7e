package coap

import "testing"

// pumpPack is a typical infusion pump report.
func pumpPack(b *testing.B) []byte {
	usage, battery, rssi := 1234567.0, 81.0, -61.0
	r := &Report{Seq: 4242, Usage: &usage, Firmware: "12.1.0", State: StateInUse, Battery: &battery,
		WiFiBSSID: "00:1a:1e:30:02:20", WiFiRSSI: &rssi, Alarms: map[string]float64{"occlusion": 2, "air-in-line": 0},
		Telemetry: map[string]float64{"infusion/rate": 125}}
	data, err := EncodePack(FormatSenMLCBOR, r.Pack())
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkDecodeReport is the gateway's per-report decoding: SenML-CBOR to
// records, records to a Report.
func BenchmarkDecodeReport(b *testing.B) {
	data := pumpPack(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		pack, err := DecodePack(FormatSenMLCBOR, data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseReport(pack); err != nil {
			b.Fatal(err)
		}
	}
}
