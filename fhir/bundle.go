package fhir

// Bundle is a FHIR R4 Bundle; the export answers searches with bundles
// of type searchset.
type Bundle struct {
	Type string `json:"type"`
	// Total is the number of matches on all pages.
	Total *int          `json:"total,omitempty"`
	Link  []BundleLink  `json:"link,omitempty"`
	Entry []BundleEntry `json:"entry,omitempty"`
}

// BundleLink is a link of a bundle: self, next.
type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// BundleEntry is one resource of a bundle.
type BundleEntry struct {
	// FullURL is the resource's absolute URL.
	FullURL  string        `json:"fullUrl,omitempty"`
	Resource Resource      `json:"resource,omitempty"`
	Search   *BundleSearch `json:"search,omitempty"`
}

// BundleSearch says why an entry is in a search's result: match, or
// outcome for an OperationOutcome about the search.
type BundleSearch struct {
	Mode string `json:"mode"`
}

func (Bundle) ResourceType() string { return "Bundle" }
func (Bundle) ResourceID() string   { return "" }
func (b Bundle) MarshalJSON() ([]byte, error) {
	type bundle Bundle
	return marshalResource("Bundle", bundle(b))
}

// OperationOutcome is a FHIR R4 OperationOutcome: the body of an error,
// or a warning in a search's result.
type OperationOutcome struct {
	Issue []Issue `json:"issue"`
}

// Issue is one issue of an OperationOutcome.
type Issue struct {
	// Severity: fatal, error, warning or information.
	Severity string `json:"severity"`
	// Code is an issue-type code: invalid, not-found, forbidden, ...
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

func (OperationOutcome) ResourceType() string { return "OperationOutcome" }
func (OperationOutcome) ResourceID() string   { return "" }
func (o OperationOutcome) MarshalJSON() ([]byte, error) {
	type outcome OperationOutcome
	return marshalResource("OperationOutcome", outcome(o))
}

// Issue types (http://hl7.org/fhir/issue-type) the export reports.
const (
	IssueInvalid      = "invalid"
	IssueValue        = "value"
	IssueTooLong      = "too-long"
	IssueLogin        = "login"
	IssueForbidden    = "forbidden"
	IssueNotFound     = "not-found"
	IssueNotSupported = "not-supported"
	IssueTimeout      = "timeout"
	IssueTransient    = "transient"
	IssueException    = "exception"
)

// Outcome is an OperationOutcome of one issue.
func Outcome(severity, code, diagnostics string) *OperationOutcome {
	return &OperationOutcome{Issue: []Issue{{Severity: severity, Code: code, Diagnostics: diagnostics}}}
}
