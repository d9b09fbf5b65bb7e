package fhir

import (
	"maps"
	"slices"
)

// CapabilityStatement is a FHIR R4 CapabilityStatement: what the export
// serves.
type CapabilityStatement struct {
	Status         string                  `json:"status"`
	Date           string                  `json:"date"`
	Publisher      string                  `json:"publisher,omitempty"`
	Description    string                  `json:"description,omitempty"`
	Kind           string                  `json:"kind"`
	Software       *CapabilitySoftware     `json:"software,omitempty"`
	Implementation *CapabilityImplementing `json:"implementation,omitempty"`
	FHIRVersion    string                  `json:"fhirVersion"`
	Format         []string                `json:"format"`
	Rest           []CapabilityRest        `json:"rest,omitempty"`
}

// CapabilitySoftware names the software.
type CapabilitySoftware struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// CapabilityImplementing is the instance the statement describes.
type CapabilityImplementing struct {
	Description string `json:"description"`
	URL         string `json:"url,omitempty"`
}

// CapabilityRest is the RESTful API.
type CapabilityRest struct {
	Mode          string               `json:"mode"`
	Documentation string               `json:"documentation,omitempty"`
	Security      *CapabilitySecurity  `json:"security,omitempty"`
	Resource      []CapabilityResource `json:"resource,omitempty"`
}

// CapabilitySecurity says how clients authenticate.
type CapabilitySecurity struct {
	CORS        bool   `json:"cors"`
	Description string `json:"description,omitempty"`
}

// CapabilityResource is what the API serves of one resource type.
type CapabilityResource struct {
	Type        string                  `json:"type"`
	Profile     string                  `json:"profile,omitempty"`
	Interaction []CapabilityInteraction `json:"interaction,omitempty"`
	SearchParam []CapabilitySearchParam `json:"searchParam,omitempty"`
}

// CapabilityInteraction is an interaction: read, search-type.
type CapabilityInteraction struct {
	Code string `json:"code"`
}

// CapabilitySearchParam is a search parameter.
type CapabilitySearchParam struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

func (CapabilityStatement) ResourceType() string { return "CapabilityStatement" }
func (CapabilityStatement) ResourceID() string   { return "" }
func (c CapabilityStatement) MarshalJSON() ([]byte, error) {
	type statement CapabilityStatement
	return marshalResource("CapabilityStatement", statement(c))
}

// capabilityDate is when what the export serves last changed.
const capabilityDate = "2026-11-24"

// Capabilities describes the export served at base (".../fhir", or ""
// when unknown), from SearchParams.
func Capabilities(base string) *CapabilityStatement {
	c := &CapabilityStatement{
		Status:      "active",
		Date:        capabilityDate,
		Publisher:   "Medfleet",
		Description: "A read-only FHIR R4 view of a Medfleet fleet of hospital medical devices and of its facility.",
		Kind:        "instance",
		Software:    &CapabilitySoftware{Name: "Medfleet medfleetd"},
		Implementation: &CapabilityImplementing{
			Description: "Medfleet FHIR R4 export",
			URL:         base,
		},
		FHIRVersion: Version,
		Format:      []string{"json", "application/fhir+json"},
	}
	rest := CapabilityRest{
		Mode: "server",
		Documentation: "Read and search only, in JSON. Searches page with _count (default 50, at most 500) and the next link's _page. " +
			"Unknown search parameters are ignored (and named in an OperationOutcome entry of the result) unless the request says " +
			"\"Prefer: handling=strict\", when they are an error. The metadata needs no credential.",
		Security: &CapabilitySecurity{Description: "A Medfleet bearer token (\"Authorization: Bearer mft_...\") of a role that may read devices; " +
			"a token confined to a site sees that site's devices and Locations only."},
	}
	for _, t := range slices.Sorted(maps.Keys(SearchParams)) {
		r := CapabilityResource{Type: t, Profile: "http://hl7.org/fhir/StructureDefinition/" + t,
			Interaction: []CapabilityInteraction{{Code: "read"}, {Code: "search-type"}}}
		for _, p := range SearchParams[t] {
			doc := p.Documentation
			if !p.Standard {
				doc += " (not an R4 search parameter)"
			}
			r.SearchParam = append(r.SearchParam, CapabilitySearchParam{Name: p.Name, Type: p.Type, Documentation: doc})
		}
		rest.Resource = append(rest.Resource, r)
	}
	c.Rest = []CapabilityRest{rest}
	return c
}
