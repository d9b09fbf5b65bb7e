// Package fhirtest checks FHIR R4 JSON documents against the published
// definitions, for tests: the FHIR R4 JSON schema (testdata/README.md
// says where it comes from and how it was trimmed to the resources
// Medfleet emits), and the rules of FHIR's JSON representation that a
// JSON schema cannot state.
//
// It is the fhir package's and the server's test helper, like
// net/http/httptest; nothing but tests may import it.
package fhirtest

import (
	"bytes"
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed testdata/fhir.schema.json
var schemaJSON []byte

// schemaURL is the schema's id as HL7 publishes it.
const schemaURL = "http://hl7.org/fhir/json-schema/4.0"

// Resources are the resource types the schema defines, the only ones
// Validate accepts at the top level.
var Resources = []string{"Bundle", "CapabilityStatement", "Device", "DeviceMetric", "Location", "OperationOutcome"}

var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	out := map[string]*jsonschema.Schema{}
	for _, r := range Resources {
		s, err := c.Compile(schemaURL + "#/definitions/" + r)
		if err != nil {
			return nil, fmt.Errorf("fhirtest: compiling the definition of %s: %w", r, err)
		}
		out[r] = s
	}
	return out, nil
})

// Validate checks one FHIR R4 resource in JSON: against the definition
// of its resourceType in the R4 JSON schema (elements, their types,
// patterns of the primitive types, codes of required bindings, and
// cardinality), then against the JSON representation's own rules: no
// empty object, array or string, and every extension with either a
// value or extensions, not both, and one value at most (ext-1).
func Validate(doc []byte) error {
	schemas, err := compiled()
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return errors.New("not a JSON object")
	}
	rt, _ := obj["resourceType"].(string)
	s, ok := schemas[rt]
	if !ok {
		return fmt.Errorf("resourceType %q: want one of %s", rt, strings.Join(Resources, ", "))
	}
	if err := s.Validate(v); err != nil {
		return err
	}
	var problems []error
	walk(v, "", "", func(path, msg string) { problems = append(problems, fmt.Errorf("%s: %s", cmp.Or(path, "/"), msg)) })
	return errors.Join(problems...)
}

// walk reports what breaks the JSON representation's rules at v, found
// at path under the property key.
func walk(v any, path, key string, report func(path, msg string)) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			report(path, "an empty object")
		}
		if key == "extension" || key == "modifierExtension" {
			extension(v, path, report)
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			walk(v[k], path+"/"+k, k, report)
		}
	case []any:
		if len(v) == 0 {
			report(path, "an empty array")
		}
		for i, x := range v {
			walk(x, fmt.Sprintf("%s/%d", path, i), key, report)
		}
	case string:
		if v == "" {
			report(path, "an empty string")
		}
	case nil:
		report(path, "null")
	}
}

// extension checks ext-1 and the choice of one value type.
func extension(ext map[string]any, path string, report func(path, msg string)) {
	var values []string
	for k := range ext {
		if strings.HasPrefix(k, "value") {
			values = append(values, k)
		}
	}
	_, nested := ext["extension"]
	switch {
	case len(values) > 1:
		slices.Sort(values)
		report(path, "an extension with more than one value: "+strings.Join(values, ", "))
	case len(values) == 1 && nested:
		report(path, "an extension with both a value and extensions (ext-1)")
	case len(values) == 0 && !nested:
		report(path, "an extension with neither a value nor extensions (ext-1)")
	}
}
