// Package cmms reads and writes a device inventory as a CMMS (computerised
// maintenance management system) exports it: a CSV file with a header row.
//
// Headers are matched to columns by name, without regard to case, spaces
// or punctuation, through the aliases that common CMMS exports use ("Asset
// #", "Equipment Number", "Serial No." ...); a mapping given by the caller
// comes first. A header "label.<key>" (or "label:<key>") is a label column.
// Headers that match nothing are reported and ignored. The delimiter is a
// comma, or a semicolon or tab when the header has those and no comma (as
// spreadsheets write in some locales); a UTF-8 byte-order mark is skipped.
//
// The package checks the shape of each row (field count, that the asset
// tag is there, dates and risk classes); what a value means for the fleet
// (a known zone, a catalogue model) is the importer's to check.
package cmms

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// The columns, in the order Write writes them.
const (
	AssetTag     = "asset_tag"
	DeviceID     = "device_id"
	Manufacturer = "manufacturer"
	Model        = "model"
	Serial       = "serial"
	UDI          = "udi"
	Profile      = "profile"
	Site         = "site"
	Location     = "location"
	LastPM       = "last_pm_date"
	RiskClass    = "risk_class"
	RFIDTag      = "rfid_tag"
)

// Columns are the columns Read knows, in the order Write writes them.
var Columns = []string{AssetTag, DeviceID, Manufacturer, Model, Serial, UDI, Profile, Site, Location, LastPM, RiskClass, RFIDTag}

// LabelPrefix starts the name of a label column: "label.unit".
const LabelPrefix = "label."

// aliases are header names CMMS exports use, normalised (see key).
var aliases = map[string]string{
	"assettag": AssetTag, "asset": AssetTag, "assetno": AssetTag, "assetnumber": AssetTag, "assetid": AssetTag,
	"equipmentnumber": AssetTag, "equipmentno": AssetTag, "equipmentid": AssetTag, "controlnumber": AssetTag,
	"controlno": AssetTag, "tag": AssetTag, "tagnumber": AssetTag,
	"deviceid": DeviceID, "id": DeviceID,
	"manufacturer": Manufacturer, "mfr": Manufacturer, "mfg": Manufacturer, "make": Manufacturer, "vendor": Manufacturer,
	"model": Model, "modelname": Model, "modelnumber": Model, "modelno": Model,
	"serial": Serial, "serialnumber": Serial, "serialno": Serial, "sn": Serial,
	"udi": UDI, "udicarrier": UDI, "udihrf": UDI, "uniquedeviceidentifier": UDI,
	"profile": Profile, "devicetype": Profile, "type": Profile,
	"site": Site, "facility": Site,
	"location": Location, "zone": Location, "room": Location, "currentlocation": Location,
	"lastpmdate": LastPM, "lastpm": LastPM, "lastinspection": LastPM, "lastinspectiondate": LastPM, "lastpmcompleted": LastPM,
	"riskclass": RiskClass, "risk": RiskClass, "risklevel": RiskClass, "riskcategory": RiskClass,
	"rfidtag": RFIDTag, "rfid": RFIDTag, "epc": RFIDTag, "rtlstag": RFIDTag,
}

// key normalises a header for matching: lower case, letters and digits only,
// with '#' read as "no" ("Asset #" is "assetno").
func key(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == '#':
			b.WriteString("no")
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Row is one data row: the values of the known columns, trimmed.
type Row struct {
	// Line is the row's 1-based line in the file.
	Line   int
	Values map[string]string
	Labels map[string]string
}

// Get returns the value of a column, "" when absent.
func (r Row) Get(column string) string { return r.Values[column] }

// Problem is something wrong with a row, or with the header (Line 1).
type Problem struct {
	Line    int
	Column  string
	Message string
}

func (p Problem) Error() string {
	if p.Column == "" {
		return fmt.Sprintf("line %d: %s", p.Line, p.Message)
	}
	return fmt.Sprintf("line %d: %s: %s", p.Line, p.Column, p.Message)
}

// File is a read inventory.
type File struct {
	// Columns are the header's columns in file order: a column name,
	// LabelPrefix+key, or "" for a header that is no known column (its
	// values are ignored).
	Columns  []string
	Rows     []Row
	Problems []Problem
}

// Limits of a file.
const (
	MaxRows   = 100_000
	MaxFields = 64
	maxValue  = 1024
)

// Read reads an inventory. mapping maps headers (as written, in any case)
// to columns and comes before the aliases. The error is for a file that
// cannot be read at all: not CSV, no header, no asset tag column, a
// mapping to an unknown column. Row problems are in File.Problems.
func Read(r io.Reader, mapping map[string]string) (*File, error) {
	br := bufio.NewReader(r)
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\xEF\xBB\xBF")) {
		br.Discard(3)
	}
	first, _ := br.Peek(4096)
	cr := csv.NewReader(br)
	cr.Comma = delimiter(first)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true // 12" monitor
	cr.ReuseRecord = true

	userMap := map[string]string{}
	for h, c := range mapping {
		if !known(c) {
			return nil, fmt.Errorf("mapping %q=%q: unknown column; known: %s, %s<key>", h, c, strings.Join(Columns, ", "), LabelPrefix)
		}
		userMap[key(h)] = c
	}

	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("the file is empty: want a header row, then a row per device")
	}
	if err != nil {
		return nil, csvError(err)
	}
	f := &File{Columns: make([]string, len(header))}
	seen := map[string]bool{}
	for i, h := range header {
		c := column(h, userMap)
		if c == "" {
			continue
		}
		if seen[c] {
			return nil, fmt.Errorf("line 1: header %q (field %d) maps to column %s, as an earlier header does", h, i+1, c)
		}
		seen[c] = true
		f.Columns[i] = c
	}
	if !seen[AssetTag] && !seen[DeviceID] {
		return nil, fmt.Errorf("line 1: no asset tag column (a header such as \"Asset Tag\", \"Asset #\" or \"Equipment Number\", or map one with asset_tag)")
	}

	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := cr.FieldPos(0)
		if len(f.Rows) == MaxRows {
			return nil, fmt.Errorf("line %d: more than %d rows; split the file", line, MaxRows)
		}
		if len(rec) != len(header) {
			f.Problems = append(f.Problems, Problem{Line: line, Message: fmt.Sprintf("%d fields, the header has %d", len(rec), len(header))})
			continue
		}
		row := Row{Line: line, Values: map[string]string{}}
		for i, v := range rec {
			c := f.Columns[i]
			v = strings.TrimSpace(v)
			if c == "" || v == "" {
				continue
			}
			if len(v) > maxValue {
				f.Problems = append(f.Problems, Problem{Line: line, Column: c, Message: fmt.Sprintf("longer than %d bytes", maxValue)})
				continue
			}
			if k, ok := strings.CutPrefix(c, LabelPrefix); ok {
				if row.Labels == nil {
					row.Labels = map[string]string{}
				}
				row.Labels[k] = v
				continue
			}
			row.Values[c] = v
		}
		f.Problems = append(f.Problems, check(row)...)
		f.Rows = append(f.Rows, row)
	}
	return f, nil
}

// column finds the column of a header.
func column(h string, userMap map[string]string) string {
	k := key(h)
	if c, ok := userMap[k]; ok {
		return c
	}
	for _, p := range []string{"label.", "label:"} {
		if l, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(h)), p); ok && l != "" {
			return LabelPrefix + l
		}
	}
	if slices.Contains(Columns, strings.ToLower(strings.TrimSpace(h))) {
		return strings.ToLower(strings.TrimSpace(h))
	}
	return aliases[k]
}

func known(c string) bool {
	if l, ok := strings.CutPrefix(c, LabelPrefix); ok {
		return l != ""
	}
	return slices.Contains(Columns, c)
}

// delimiter guesses the delimiter from the start of the file: a comma,
// unless the first line has none and has semicolons or tabs.
func delimiter(start []byte) rune {
	line, _, _ := bytes.Cut(start, []byte("\n"))
	if bytes.ContainsRune(line, ',') {
		return ','
	}
	if bytes.ContainsRune(line, ';') {
		return ';'
	}
	if bytes.ContainsRune(line, '\t') {
		return '\t'
	}
	return ','
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d: not CSV: %v", pe.Line, pe.Err)
	}
	return err
}

// check finds what is wrong with a row on its own.
func check(r Row) []Problem {
	var ps []Problem
	if r.Get(AssetTag) == "" && r.Get(DeviceID) == "" {
		ps = append(ps, Problem{Line: r.Line, Column: AssetTag, Message: "required"})
	}
	if v := r.Get(LastPM); v != "" {
		if _, err := ParseDate(v); err != nil {
			ps = append(ps, Problem{Line: r.Line, Column: LastPM, Message: err.Error()})
		}
	}
	if v := r.Get(RiskClass); v != "" {
		if _, err := ParseRiskClass(v); err != nil {
			ps = append(ps, Problem{Line: r.Line, Column: RiskClass, Message: err.Error()})
		}
	}
	return ps
}

// ParseDate reads a date as YYYY-MM-DD. Other forms are refused rather than
// guessed: 03/04/2025 is March or April depending on who wrote it.
func ParseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date as YYYY-MM-DD", s)
	}
	return t, nil
}

// riskClasses are the names a risk class is written with.
var riskClasses = map[string]pb.RiskClass{
	"low": pb.RiskClass_RISK_CLASS_LOW, "medium": pb.RiskClass_RISK_CLASS_MEDIUM, "moderate": pb.RiskClass_RISK_CLASS_MEDIUM,
	"high": pb.RiskClass_RISK_CLASS_HIGH, "lifesupport": pb.RiskClass_RISK_CLASS_LIFE_SUPPORT,
}

// ParseRiskClass reads "low", "medium" (or "moderate"), "high" or "life
// support", in any case.
func ParseRiskClass(s string) (pb.RiskClass, error) {
	if c, ok := riskClasses[key(s)]; ok {
		return c, nil
	}
	return 0, fmt.Errorf("%q is not a risk class: low, medium, high or life-support", s)
}

// RiskClassName is how Write writes a risk class: "" when unspecified.
func RiskClassName(c pb.RiskClass) string {
	switch c {
	case pb.RiskClass_RISK_CLASS_LOW:
		return "low"
	case pb.RiskClass_RISK_CLASS_MEDIUM:
		return "medium"
	case pb.RiskClass_RISK_CLASS_HIGH:
		return "high"
	case pb.RiskClass_RISK_CLASS_LIFE_SUPPORT:
		return "life-support"
	}
	return ""
}

// Writer writes an inventory: the header (Columns, then a label column per
// label key), then a row per device.
type Writer struct {
	w      *csv.Writer
	labels []string
}

// NewWriter writes the header at once; labels are the label keys to write,
// in order.
func NewWriter(w io.Writer, labels []string) (*Writer, error) {
	cw := csv.NewWriter(w)
	header := slices.Clone(Columns)
	for _, l := range labels {
		header = append(header, LabelPrefix+l)
	}
	if err := cw.Write(header); err != nil {
		return nil, err
	}
	return &Writer{w: cw, labels: labels}, nil
}

// Write writes a row.
func (w *Writer) Write(r Row) error {
	rec := make([]string, 0, len(Columns)+len(w.labels))
	for _, c := range Columns {
		rec = append(rec, r.Values[c])
	}
	for _, l := range w.labels {
		rec = append(rec, r.Labels[l])
	}
	return w.w.Write(rec)
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.w.Flush()
	return w.w.Error()
}

// LabelKeys are the label keys of rows, sorted.
func LabelKeys(rows []Row) []string {
	keys := map[string]bool{}
	for _, r := range rows {
		for k := range r.Labels {
			keys[k] = true
		}
	}
	return slices.Sorted(maps.Keys(keys))
}
