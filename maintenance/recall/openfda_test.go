package recall

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const samplePath = "../../examples/recalls/openfda-device-recall.json"

// sampleRecalls parses the sample file and returns its recalls by ID.
func sampleRecalls(t testing.TB) map[string]Recall {
	t.Helper()
	f, err := os.Open(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recalls, err := ParseOpenFDA(f)
	if err != nil {
		t.Fatalf("ParseOpenFDA(%s) error: %v", samplePath, err)
	}
	byID := make(map[string]Recall, len(recalls))
	for _, r := range recalls {
		byID[r.ID] = r
	}
	return byID
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseOpenFDASample(t *testing.T) {
	f, err := os.Open(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recalls, err := ParseOpenFDA(f)
	if err != nil {
		t.Fatalf("ParseOpenFDA(%s) error: %v", samplePath, err)
	}
	var ids []string
	for _, r := range recalls {
		ids = append(ids, r.ID)
	}
	wantIDs := []string{"Z-1432-2026", "Z-1433-2026", "Z-1610-2026", "Z-1207-2026", "Z-1389-2026", "Z-0871-2024"}
	if diff := cmp.Diff(wantIDs, ids); diff != "" {
		t.Fatalf("ParseOpenFDA(%s) IDs (-want +got):\n%s", samplePath, diff)
	}

	got := recalls[0]
	want := Recall{
		ID:                 "Z-1432-2026",
		CFRESID:            "212904",
		EventNumber:        "98123",
		Status:             "Open, Classified",
		Initiated:          day("2026-03-02"),
		Posted:             day("2026-04-08"),
		ProductCode:        "FRN",
		KNumbers:           []string{"K253318"},
		ProductDescription: got.ProductDescription,
		CodeInfo:           "Model 8100; Serial Numbers: 12580050 through 12580099, 12580120 and 12580133. UDI-DI: 10885403810022",
		Firm:               "CareFusion 303, Inc.",
		Reason:             got.Reason,
		RootCause:          "Component design/selection",
		Action:             got.Action,
		DeviceName:         "Pump, Infusion",
		DeviceClass:        "2",
		Codes: Codes{
			Models:  []string{"8100"},
			Serials: []Range{span("12580050", "12580099"), one("12580120"), one("12580133")},
			DIs:     []string{"10885403810022"},
		},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("recall %s (-want +got):\n%s", want.ID, diff)
	}
	if !strings.HasPrefix(got.ProductDescription, "BD Alaris Pump Module, Model 8100") {
		t.Errorf("recall %s ProductDescription = %q", got.ID, got.ProductDescription)
	}

	e := recalls[5]
	if e.Status != "Terminated" || !e.Terminated.Equal(day("2025-06-12")) || !e.Initiated.Equal(day("2023-10-02")) {
		t.Errorf("recall %s: Status %q, Initiated %v, Terminated %v; want Terminated, 2023-10-02, 2025-06-12",
			e.ID, e.Status, e.Initiated, e.Terminated)
	}
	if wantSerials := []Range{span("NIS-0101", "NIS-0148")}; !cmp.Equal(e.Codes.Serials, wantSerials) {
		t.Errorf("recall %s Codes.Serials = %v, want %v", e.ID, e.Codes.Serials, wantSerials)
	}
	for _, r := range recalls[:5] {
		if !r.Terminated.IsZero() {
			t.Errorf("recall %s Terminated = %v, want zero", r.ID, r.Terminated)
		}
	}
	// The product description names the model; the code information the
	// units. "Product Code 35700BAX3" in the description is not a model
	// number of its own, but it is the same one.
	d := recalls[4]
	if !cmp.Equal(d.Codes.Models, []string{"35700BAX3"}) {
		t.Errorf("recall %s Codes.Models = %q, want [35700BAX3]", d.ID, d.Codes.Models)
	}
	b := recalls[2]
	if !b.Codes.All || len(b.Codes.Serials) != 0 || !cmp.Equal(b.Codes.DIs, []string{"00619498390002", "00619498390019"}) {
		t.Errorf("recall %s Codes = %+v, want All, no serials, two DIs", b.ID, b.Codes)
	}
	c := recalls[3]
	if !cmp.Equal(c.Codes.Lots, []Range{span("4505", "4510")}) || c.ProductCode != "LDD" {
		t.Errorf("recall %s: Codes.Lots = %v, ProductCode %q; want [4505-4510], LDD", c.ID, c.Codes.Lots, c.ProductCode)
	}
}

func TestParseCodes(t *testing.T) {
	got := ParseCodes("Serial Numbers: 1001-1005. UDI-DI: 10885403810022",
		"Alaris Pump Module, Model 8100, 1000 mL bags, Lot 99. GTIN 00085412093402")
	want := Codes{
		Models:  []string{"8100"},
		Serials: []Range{span("1001", "1005")},
		DIs:     []string{"10885403810022", "00085412093402"},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ParseCodes (-want +got):\n%s", diff)
	}
}

func TestParseOpenFDAAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // IDs
	}{
		{"bare array", `[{"product_res_number":"Z-1"},{"product_res_number":"Z-2"}]`, []string{"Z-1", "Z-2"}},
		{"no results", `{"meta":{"results":{"skip":0,"limit":1,"total":0}},"results":[]}`, nil},
		{"unknown fields of any type", `{"meta":7,"results":[{"product_res_number":"Z-1","new_field":{"a":[1]},"pma_numbers":[null],"product_quantity":12}]}`, []string{"Z-1"}},
		{"null fields", `[{"product_res_number":"Z-1","code_info":null,"k_numbers":null,"openfda":null}]`, []string{"Z-1"}},
		{"empty openfda", `[{"product_res_number":"Z-1","openfda":{}}]`, []string{"Z-1"}},
		{"enforcement-style date", `[{"product_res_number":"Z-1","event_date_initiated":"20260302"}]`, []string{"Z-1"}},
		{"byte order mark", "\xef\xbb\xbf[{\"product_res_number\":\"Z-1\"}]", []string{"Z-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recalls, err := ParseOpenFDA(strings.NewReader(tc.in))
			if err != nil {
				t.Fatalf("ParseOpenFDA(%s) error: %v", tc.in, err)
			}
			var ids []string
			for _, r := range recalls {
				ids = append(ids, r.ID)
			}
			if diff := cmp.Diff(tc.want, ids, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseOpenFDA(%s) IDs (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestParseOpenFDAErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the error message
	}{
		{"not JSON", `{"results": [`, "recall: not JSON: unexpected end of JSON input (offset 13)"},
		{"not JSON at all", `Z-1432-2026`, "recall: not JSON: invalid character 'Z' looking for beginning of value (offset 1)"},
		{"empty", ``, "recall: not JSON: unexpected end of JSON input (offset 0)"},
		{"a string", `"recalls"`, "recall: want an openFDA response object or an array of results"},
		{"no results", `{"meta":{}}`, "recall: results: required"},
		{"openFDA error", `{"error":{"code":"NOT_FOUND","message":"No matches found!"}}`, "recall: error: openFDA says NOT_FOUND: No matches found!"},
		{"results not an array", `{"results":{"product_res_number":"Z-1"}}`, "recall: results: want an array, got object"},
		{"result not an object", `{"results":[{"product_res_number":"Z-1"},"Z-2"]}`, "recall: results[1]: want an object, got string"},
		{"missing product_res_number", `{"results":[{"product_res_number":"Z-1"},{"product_res_number":"Z-2"},{"product_res_number":"Z-3"},{"cfres_id":"1"}]}`, "recall: results[3].product_res_number: required"},
		{"blank product_res_number", `[{"product_res_number":"  "}]`, "recall: results[0].product_res_number: required"},
		{"duplicate IDs", `[{"product_res_number":"Z-1"},{"product_res_number":"Z-2"},{"product_res_number":"Z-1"}]`, `recall: results[2].product_res_number: "Z-1" is also results[0]`},
		{"k_numbers a string", `[{"product_res_number":"Z-1","k_numbers":"K253318"}]`, "recall: results[0].k_numbers: want an array of strings, got string"},
		{"k_numbers of numbers", `[{"product_res_number":"Z-1"},{"product_res_number":"Z-2","k_numbers":[253318]}]`, "recall: results[1].k_numbers: want a string, got number"},
		{"openfda not an object", `[{"product_res_number":"Z-1","openfda":["FRN"]}]`, "recall: results[0].openfda: want an object, got array"},
		{"openfda field wrong type", `[{"product_res_number":"Z-1","openfda":{"device_name":3}}]`, "recall: results[0].openfda.device_name: want a string, got number"},
		{"product_res_number a number", `[{"product_res_number":1432}]`, "recall: results[0].product_res_number: want a string, got number"},
		{"bad date", `[{"product_res_number":"Z-1","event_date_posted":"04/08/2026"}]`, `recall: results[0].event_date_posted: "04/08/2026" is not a date (want YYYY-MM-DD)`},
		{"impossible date", `[{"product_res_number":"Z-1","event_date_terminated":"2026-02-30"}]`, `recall: results[0].event_date_terminated: "2026-02-30" is not a date (want YYYY-MM-DD)`},
		{"bad product code", `[{"product_res_number":"Z-1","product_code":"FR1"}]`, `recall: results[0].product_code: "FR1" is not a three-letter FDA product code`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOpenFDA(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("ParseOpenFDA(%s) error = nil, want %q", tc.in, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("ParseOpenFDA(%s) error = %q, want %q", tc.in, err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("ParseOpenFDA(%s) error %T is not a *FieldError", tc.in, err)
			}
		})
	}
}

func TestParseOpenFDATooLarge(t *testing.T) {
	// "[" and then spaces, forever: valid so far, and never ending.
	r := io.MultiReader(strings.NewReader("["), spaces{})
	if _, err := ParseOpenFDA(r); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ParseOpenFDA(endless input) error = %v, want ErrTooLarge", err)
	}
}

type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func FuzzParseOpenFDA(f *testing.F) {
	if data, err := os.ReadFile(samplePath); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`[{"product_res_number":"Z-1","code_info":"SN: 1001-1050, 1060","k_numbers":["K1"],"openfda":{}}]`))
	f.Add([]byte(`{"results":[{"product_res_number":"Z-1"},{"product_res_number":"Z-1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recalls, err := ParseOpenFDA(strings.NewReader(string(data)))
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseOpenFDA error %T %v is not a *FieldError", err, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range recalls {
			if r.ID == "" || seen[r.ID] {
				t.Fatalf("ParseOpenFDA returned an empty or repeated ID %q", r.ID)
			}
			seen[r.ID] = true
		}
	})
}
