package inventory

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/medfleet/medfleet/internal/filter"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Filter is a parsed ListDevices filter: a conjunction of comparisons in the
// AIP-160 syntax, such as `profile = "cpap" AND connectivity = ONLINE`.
type Filter struct {
	terms []term
}

type term struct {
	field string // profile, model, ..., or labels.<key>
	neg   bool   // != rather than =
	value string // for enums, the bare name (ONLINE, IN_USE)
}

// filterFields are the device fields a filter may name, with the enum values
// each accepts (nil: any string).
var filterFields = map[string][]string{
	"profile":          nil,
	"model":            nil,
	"manufacturer":     nil,
	"serial":           nil,
	"udi":              nil,
	"site":             nil,
	"firmware_version": nil,
	"rfid_tag":         nil,
	"asset_tag":        nil,
	"udi_di":           nil,
	"lot":              nil,
	"risk_class":       {"LOW", "MEDIUM", "HIGH", "LIFE_SUPPORT", "UNSPECIFIED"},
	"availability":     {"AVAILABLE", "IN_USE", "SOILED", "IN_MAINTENANCE", "OUT_OF_SERVICE", "UNSPECIFIED"},
	"connectivity":     {"ONLINE", "OFFLINE"},
	"clinical_state":   {"IDLE", "IN_USE", "CHARGING", "FAULT", "UNSPECIFIED"},
}

// ParseFilter parses a filter string; an empty string matches everything.
// Errors are *FieldError on the field "filter".
func ParseFilter(s string) (*Filter, error) {
	if len(s) > 1024 {
		return nil, &FieldError{Field: "filter", Reason: "longer than 1024 bytes"}
	}
	terms, err := filter.Parse(s)
	if err != nil {
		return nil, &FieldError{Field: "filter", Reason: err.Error()}
	}
	f := &Filter{}
	for _, ft := range terms {
		if ft.Op != "=" && ft.Op != "!=" {
			return nil, filterErr("%s cannot be compared with %s; use = or !=", ft.Field, ft.Op)
		}
		t := term{field: ft.Field, neg: ft.Op == "!=", value: ft.Value}
		if key, ok := strings.CutPrefix(t.field, "labels."); ok {
			if key == "" {
				return nil, filterErr("labels. needs a key, as in labels.unit = \"4-west\"")
			}
		} else {
			enums, known := filterFields[t.field]
			if !known {
				known := slices.Sorted(maps.Keys(filterFields))
				return nil, filterErr("unknown field %q; known: %s, labels.<key>", t.field, strings.Join(known, ", "))
			}
			if enums != nil {
				t.value = strings.TrimPrefix(strings.ToUpper(t.value), strings.ToUpper(t.field)+"_")
				if !slices.Contains(enums, t.value) {
					return nil, filterErr("%s cannot be %q; want one of %s", t.field, ft.Value, strings.Join(enums, ", "))
				}
			}
		}
		f.terms = append(f.terms, t)
	}
	return f, nil
}

// String is the canonical form of the filter, used to tie page tokens to it.
func (f *Filter) String() string {
	terms := make([]filter.Term, len(f.terms))
	for i, t := range f.terms {
		terms[i] = filter.Term{Field: t.field, Op: "=", Value: t.value}
		if t.neg {
			terms[i].Op = "!="
		}
	}
	return filter.String(terms)
}

// match reports whether a device (registry part and status) passes the
// filter; conn computes its connectivity, only when a term needs it.
func (f *Filter) match(d *pb.Device, st *pb.DeviceStatus, conn func() pb.Connectivity) bool {
	for _, t := range f.terms {
		var got string
		switch t.field {
		case "profile":
			got = d.GetProfile()
		case "model":
			got = d.GetModel()
		case "manufacturer":
			got = d.GetManufacturer()
		case "serial":
			got = d.GetSerial()
		case "udi":
			got = d.GetUdi()
		case "site":
			got = d.GetSite()
		case "firmware_version":
			got = st.GetFirmwareVersion()
		case "rfid_tag":
			got = d.GetRfidTag()
		case "asset_tag":
			got = d.GetAssetTag()
		case "udi_di":
			got = d.GetUdiCarrier().GetDeviceIdentifier()
		case "lot":
			got = d.GetUdiCarrier().GetLot()
		case "risk_class":
			got = strings.TrimPrefix(d.GetRiskClass().String(), "RISK_CLASS_")
		case "availability":
			got = strings.TrimPrefix(st.GetAvailability().String(), "AVAILABILITY_")
		case "connectivity":
			got = strings.TrimPrefix(conn().String(), "CONNECTIVITY_")
		case "clinical_state":
			got = strings.TrimPrefix(st.GetClinicalState().String(), "CLINICAL_STATE_")
		default:
			got = d.GetLabels()[strings.TrimPrefix(t.field, "labels.")]
		}
		if (got == t.value) == t.neg {
			return false
		}
	}
	return true
}

func filterErr(format string, args ...any) error {
	return &FieldError{Field: "filter", Reason: fmt.Sprintf(format, args...)}
}
