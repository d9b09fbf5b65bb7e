//go:build ignore

// extract writes fhir.schema.json: the definitions of the FHIR R4 JSON
// schema that Medfleet's FHIR export emits, and every datatype they refer
// to, from the published schema (README.md says where the inputs come
// from). Run from the repository root:
//
//	go run fhir/fhirtest/testdata/extract.go \
//	  -hl7 /tmp/asym/package/fhir.schema.json \
//	  -r401 /tmp/medplum/package/dist/fhir/r4 \
//	  -o fhir/fhirtest/testdata/fhir.schema.json
//
// What it changes, each checked or derived from the 4.0.1 files:
//   - only the definitions reachable from the resources below are kept,
//     and ResourceList (what Bundle.entry.resource and contained may hold)
//     lists only the resources Medfleet emits;
//   - every definition kept must equal its 4.0.1 form, save for properties
//     the 4.0.1 copy adds that HL7's schema does not have (Medplum's own:
//     Meta.project, Reference.resource, ...), which are left out, and for
//     enumerations the 4.0.1 copy extends (FHIRVersion gains "4.0.1"),
//     which are taken from it; anything else stops the extraction;
//   - "required" lists the elements of minimum cardinality 1 in the 4.0.1
//     StructureDefinitions (the JSON schema states no minimum but
//     resourceType's); choice elements (value[x]) are left out, as a
//     choice has no single JSON name;
//   - every definition with properties (a resource, a complex datatype, a
//     backbone element) is of type object: HL7's schema does not say so,
//     and so lets an array or a string pass where an object belongs;
//   - descriptions are dropped.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// roots are the resources the export emits; emitted are those a Bundle
// entry holds.
var (
	roots   = []string{"Bundle", "CapabilityStatement", "Device", "DeviceMetric", "Location", "OperationOutcome"}
	emitted = []string{"Device", "DeviceMetric", "Location", "OperationOutcome"}
)

type object = map[string]any

func main() {
	hl7 := flag.String("hl7", "", "HL7's fhir.schema.json (R4)")
	r401 := flag.String("r401", "", "directory of the 4.0.1 fhir.schema.json, profiles-resources.json and profiles-types.json")
	out := flag.String("o", "fhir.schema.json", "output file")
	flag.Parse()

	base := read(*hl7)
	newer := read(filepath.Join(*r401, "fhir.schema.json"))
	defs, newDefs := base["definitions"].(object), newer["definitions"].(object)

	keep := closure(defs)
	kept := object{}
	for _, name := range keep {
		d, err := reconcile(name, defs[name].(object), newDefs[name].(object))
		if err != nil {
			log.Fatal(err)
		}
		kept[name] = d
	}
	var list []any
	for _, r := range emitted {
		list = append(list, object{"$ref": "#/definitions/" + r})
	}
	kept["ResourceList"] = object{"oneOf": list}

	sds := structureDefinitions(filepath.Join(*r401, "profiles-types.json"), filepath.Join(*r401, "profiles-resources.json"))
	addRequired(kept, sds)
	for _, d := range kept {
		if d := d.(object); d["properties"] != nil {
			if _, ok := d["type"]; ok {
				log.Fatalf("a complex definition with a type: %v", d["type"])
			}
			d["type"] = "object"
		}
	}

	var rootRefs []any
	for _, r := range roots {
		rootRefs = append(rootRefs, object{"$ref": "#/definitions/" + r})
	}
	doc := object{
		"$schema":     "http://json-schema.org/draft-06/schema#",
		"id":          "http://hl7.org/fhir/json-schema/4.0",
		"description": "FHIR R4 (4.0.1) JSON schema, trimmed to what Medfleet's FHIR export emits: see README.md",
		"oneOf":       rootRefs,
		"definitions": stripDescriptions(kept),
	}
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d definitions, %d bytes\n", *out, len(kept), len(b)+1)
}

func read(path string) object {
	b, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v object
	if err := dec.Decode(&v); err != nil {
		log.Fatalf("%s: %v", path, err)
	}
	return v
}

// closure returns the roots and every definition they refer to, sorted;
// ResourceList is not followed (it is replaced).
func closure(defs object) []string {
	seen := map[string]bool{}
	stack := slices.Clone(roots)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[n] || n == "ResourceList" {
			continue
		}
		if defs[n] == nil {
			log.Fatalf("no definition %s", n)
		}
		seen[n] = true
		refs(defs[n], func(ref string) { stack = append(stack, strings.TrimPrefix(ref, "#/definitions/")) })
	}
	return slices.Sorted(maps.Keys(seen))
}

func refs(v any, fn func(string)) {
	switch v := v.(type) {
	case object:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				fn(s)
			} else {
				refs(x, fn)
			}
		}
	case []any:
		for _, x := range v {
			refs(x, fn)
		}
	}
}

// reconcile checks that HL7's definition d equals the 4.0.1 one, n, save
// for the differences the package comment allows, and returns d with
// n's extended enumerations.
func reconcile(name string, d, n object) (object, error) {
	d = deepCopy(d).(object)
	for k := range n {
		if _, ok := d[k]; !ok {
			return nil, fmt.Errorf("%s: the 4.0.1 definition has %q, HL7's not", name, k)
		}
	}
	for k, v := range d {
		if k == "properties" {
			continue
		}
		if !reflect.DeepEqual(v, n[k]) {
			return nil, fmt.Errorf("%s.%s differs in 4.0.1", name, k)
		}
	}
	props, _ := d["properties"].(object)
	newProps, _ := n["properties"].(object)
	for p, v := range props {
		nv, ok := newProps[p]
		if !ok {
			return nil, fmt.Errorf("%s.%s is not in 4.0.1", name, p)
		}
		if reflect.DeepEqual(v, nv) {
			continue
		}
		old, _ := v.(object)["enum"].([]any)
		ext, _ := nv.(object)["enum"].([]any)
		if old == nil || ext == nil || len(ext) < len(old) || !reflect.DeepEqual(ext[:len(old)], old) {
			return nil, fmt.Errorf("%s.%s differs in 4.0.1 other than by an extended enumeration", name, p)
		}
		v.(object)["enum"] = ext
		if !reflect.DeepEqual(v, nv) {
			return nil, fmt.Errorf("%s.%s differs in 4.0.1 beyond its enumeration", name, p)
		}
		log.Printf("%s.%s: enumeration extended by %v", name, p, ext[len(old):])
	}
	for p := range newProps {
		if _, ok := props[p]; !ok {
			log.Printf("%s.%s: only in the 4.0.1 copy; left out", name, p)
		}
	}
	return d, nil
}

// element is one element of a StructureDefinition snapshot.
type element struct {
	Path string `json:"path"`
	Min  int    `json:"min"`
}

// structureDefinitions returns the snapshot elements of every
// StructureDefinition in the bundles, by id.
func structureDefinitions(paths ...string) map[string][]element {
	out := map[string][]element{}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			log.Fatal(err)
		}
		var bundle struct {
			Entry []struct {
				Resource struct {
					ResourceType string `json:"resourceType"`
					ID           string `json:"id"`
					Version      string `json:"version"`
					Snapshot     struct {
						Element []element `json:"element"`
					} `json:"snapshot"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &bundle); err != nil {
			log.Fatalf("%s: %v", path, err)
		}
		for _, e := range bundle.Entry {
			r := e.Resource
			if r.ResourceType == "StructureDefinition" {
				if r.Version != "4.0.1" {
					continue
				}
				out[r.ID] = r.Snapshot.Element
			}
		}
	}
	return out
}

// addRequired lists, in each kept definition, the properties whose
// element has a minimum cardinality of 1. A definition of a backbone
// element is reached from its resource by following the properties'
// references.
func addRequired(defs object, sds map[string][]element) {
	for _, root := range slices.Sorted(maps.Keys(defs)) {
		_, complex := defs[root].(object)["properties"]
		if !complex || strings.Contains(root, "_") {
			continue // a primitive, or a backbone element: reached from its resource
		}
		els, ok := sds[root]
		if !ok {
			log.Fatalf("no 4.0.1 StructureDefinition of %s", root)
		}
		for _, el := range els {
			parts := strings.Split(el.Path, ".")
			if el.Min < 1 || len(parts) < 2 || strings.HasSuffix(el.Path, "[x]") {
				continue
			}
			def, ok := resolve(defs, root, parts[1:len(parts)-1])
			if !ok {
				log.Fatalf("%s: no definition for the parent of %s", root, el.Path)
			}
			prop := parts[len(parts)-1]
			d := defs[def].(object)
			if _, ok := d["properties"].(object)[prop]; !ok {
				log.Fatalf("%s: %s has no property %s", el.Path, def, prop)
			}
			req, _ := d["required"].([]any)
			if !slices.Contains(req, any(prop)) {
				d["required"] = append(req, prop)
			}
		}
	}
}

// resolve follows the properties in path from definition name.
func resolve(defs object, name string, path []string) (string, bool) {
	for _, p := range path {
		d, ok := defs[name].(object)
		if !ok {
			return "", false
		}
		prop, ok := d["properties"].(object)[p].(object)
		if !ok {
			return "", false
		}
		if items, ok := prop["items"].(object); ok {
			prop = items
		}
		ref, ok := prop["$ref"].(string)
		if !ok {
			return "", false
		}
		name = strings.TrimPrefix(ref, "#/definitions/")
	}
	return name, true
}

func stripDescriptions(v any) any {
	switch v := v.(type) {
	case object:
		out := object{}
		for k, x := range v {
			if k == "description" {
				if _, isString := x.(string); isString {
					continue
				}
			}
			out[k] = stripDescriptions(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = stripDescriptions(x)
		}
		return out
	}
	return v
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case object:
		out := object{}
		for k, x := range v {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}
