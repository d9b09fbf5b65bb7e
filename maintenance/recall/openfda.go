package recall

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// MaxInput is the largest openFDA file ParseOpenFDA reads: a full page of
// the API (1000 records) is a few MiB.
const MaxInput = 32 << 20

// ErrTooLarge is returned for input larger than MaxInput.
var ErrTooLarge = errors.New("recall: input larger than 32 MiB")

// Recall is one openFDA device recall record (one product of a recall event).
type Recall struct {
	ID                            string // product_res_number, e.g. "Z-0557-04"; required
	CFRESID                       string // cfres_id
	EventNumber                   string // res_event_number
	Status                        string // recall_status ("Open, Classified", "Terminated", ...)
	Initiated, Posted, Terminated time.Time
	ProductCode                   string // product_code, three upper-case letters, or ""
	KNumbers                      []string
	ProductDescription            string
	CodeInfo                      string
	Firm                          string // recalling_firm
	Reason                        string // reason_for_recall
	RootCause                     string // root_cause_description
	Action                        string
	// DeviceName and DeviceClass are openfda.device_name (the product
	// code's name) and openfda.device_class ("1", "2", "3", ...).
	DeviceName, DeviceClass string
	// Codes is ParseCodes(CodeInfo, ProductDescription): what the code
	// information names, with the models and device identifiers the
	// product description names.
	Codes Codes
}

// FieldError is an openFDA record that is not valid: the result's index and
// the field, as openFDA names it ("product_res_number", "openfda.device_name").
type FieldError struct {
	Index int    // in results; -1 for the response itself
	Field string // "" for the whole result
	Msg   string
}

func (e *FieldError) Error() string {
	path := e.Field
	if e.Index >= 0 {
		path = fmt.Sprintf("results[%d]", e.Index)
		if e.Field != "" {
			path += "." + e.Field
		}
	}
	if path == "" {
		return "recall: " + e.Msg
	}
	return "recall: " + path + ": " + e.Msg
}

// rawRecall is the part of an openFDA device/recall record that Recall
// keeps. Other fields are ignored, whatever their type.
type rawRecall struct {
	ProductResNumber   string   `json:"product_res_number"`
	CFResID            string   `json:"cfres_id"`
	ResEventNumber     string   `json:"res_event_number"`
	RecallStatus       string   `json:"recall_status"`
	Initiated          string   `json:"event_date_initiated"`
	Posted             string   `json:"event_date_posted"`
	Terminated         string   `json:"event_date_terminated"`
	ProductCode        string   `json:"product_code"`
	KNumbers           []string `json:"k_numbers"`
	ProductDescription string   `json:"product_description"`
	CodeInfo           string   `json:"code_info"`
	RecallingFirm      string   `json:"recalling_firm"`
	ReasonForRecall    string   `json:"reason_for_recall"`
	RootCause          string   `json:"root_cause_description"`
	Action             string   `json:"action"`
	OpenFDA            struct {
		DeviceName  string `json:"device_name"`
		DeviceClass string `json:"device_class"`
	} `json:"openfda"`
}

type response struct {
	Results *[]json.RawMessage `json:"results"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ParseOpenFDA reads openFDA device/recall records: an API response
// ({"meta": {...}, "results": [...]}, as api.fda.gov/device/recall.json
// and the download.open.fda.gov files give them) or a bare JSON array of
// results. It reads at most MaxInput bytes. Unknown fields are ignored;
// product_res_number is required and unique; dates are "YYYY-MM-DD" (or
// "YYYYMMDD"). Errors are *FieldError naming the result's index and field,
// "recall: results[3].product_res_number: required", or ErrTooLarge.
func ParseOpenFDA(r io.Reader) ([]Recall, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("recall: read: %w", err)
	}
	if len(data) > MaxInput {
		return nil, ErrTooLarge
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	var results []json.RawMessage
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		if err := json.Unmarshal(data, &results); err != nil {
			return nil, decodeError(-1, err)
		}
	case len(trimmed) > 0 && trimmed[0] == '{':
		var resp response
		if err := json.Unmarshal(data, &resp); err != nil {
			return nil, decodeError(-1, err)
		}
		if resp.Error != nil && resp.Results == nil {
			return nil, &FieldError{Index: -1, Field: "error",
				Msg: fmt.Sprintf("openFDA says %s: %s", resp.Error.Code, resp.Error.Message)}
		}
		if resp.Results == nil {
			return nil, &FieldError{Index: -1, Field: "results", Msg: "required"}
		}
		results = *resp.Results
	default:
		if !json.Valid(data) {
			var v any
			return nil, decodeError(-1, json.Unmarshal(data, &v))
		}
		return nil, &FieldError{Index: -1, Msg: "want an openFDA response object or an array of results"}
	}

	recalls := make([]Recall, 0, len(results))
	seen := make(map[string]int, len(results))
	for i, raw := range results {
		rec, err := parseResult(i, raw)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[rec.ID]; dup {
			return nil, &FieldError{Index: i, Field: "product_res_number",
				Msg: fmt.Sprintf("%q is also results[%d]", rec.ID, j)}
		}
		seen[rec.ID] = i
		recalls = append(recalls, rec)
	}
	return recalls, nil
}

func parseResult(i int, raw json.RawMessage) (Recall, error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return Recall{}, &FieldError{Index: i, Msg: "want an object, got " + jsonKind(t)}
	}
	var rr rawRecall
	if err := json.Unmarshal(raw, &rr); err != nil {
		return Recall{}, decodeError(i, err)
	}
	rec := Recall{
		ID:                 strings.TrimSpace(rr.ProductResNumber),
		CFRESID:            strings.TrimSpace(rr.CFResID),
		EventNumber:        strings.TrimSpace(rr.ResEventNumber),
		Status:             strings.TrimSpace(rr.RecallStatus),
		ProductCode:        strings.ToUpper(strings.TrimSpace(rr.ProductCode)),
		KNumbers:           rr.KNumbers,
		ProductDescription: rr.ProductDescription,
		CodeInfo:           rr.CodeInfo,
		Firm:               strings.TrimSpace(rr.RecallingFirm),
		Reason:             rr.ReasonForRecall,
		RootCause:          strings.TrimSpace(rr.RootCause),
		Action:             rr.Action,
		DeviceName:         strings.TrimSpace(rr.OpenFDA.DeviceName),
		DeviceClass:        strings.TrimSpace(rr.OpenFDA.DeviceClass),
	}
	if rec.ID == "" {
		return Recall{}, &FieldError{Index: i, Field: "product_res_number", Msg: "required"}
	}
	if rec.ProductCode != "" && !isProductCode(rec.ProductCode) {
		return Recall{}, &FieldError{Index: i, Field: "product_code",
			Msg: fmt.Sprintf("%q is not a three-letter FDA product code", rr.ProductCode)}
	}
	for _, d := range []struct {
		field string
		in    string
		out   *time.Time
	}{
		{"event_date_initiated", rr.Initiated, &rec.Initiated},
		{"event_date_posted", rr.Posted, &rec.Posted},
		{"event_date_terminated", rr.Terminated, &rec.Terminated},
	} {
		t, err := parseDate(d.in)
		if err != nil {
			return Recall{}, &FieldError{Index: i, Field: d.field, Msg: err.Error()}
		}
		*d.out = t
	}
	rec.Codes = ParseCodes(rec.CodeInfo, rec.ProductDescription)
	return rec, nil
}

// ParseCodes is what a recall names: ParseCodeInfo(codeInfo), with the
// models and device identifiers its product description names ("Alaris
// Pump Module, Model 8100"), but not the description's other numbers.
// ParseOpenFDA sets Recall.Codes to it.
func ParseCodes(codeInfo, description string) Codes {
	c := ParseCodeInfo(codeInfo)
	d := ParseCodeInfo(description)
	c.Models = dedupeStrings(append(c.Models, d.Models...))
	c.DIs = dedupeStrings(append(c.DIs, d.DIs...))
	return c
}

func isProductCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// parseDate reads an openFDA date: "YYYY-MM-DD" in device/recall, or
// "YYYYMMDD" as in the enforcement endpoint. "" is the zero time.
func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.DateOnly, "20060102"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date (want YYYY-MM-DD)", s)
}

// decodeError turns an encoding/json error into a FieldError.
func decodeError(i int, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &FieldError{Index: -1, Msg: fmt.Sprintf("not JSON: %v (offset %d)", syn, syn.Offset)}
	case errors.As(err, &typ):
		return &FieldError{Index: i, Field: typ.Field,
			Msg: fmt.Sprintf("want %s, got %s", goKind(typ.Type), typ.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Index: -1, Msg: "not JSON: unexpected end of input"}
	}
	return &FieldError{Index: i, Msg: err.Error()}
}

// goKind names a Go type the way JSON would.
func goKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "an array of strings"
		}
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}
