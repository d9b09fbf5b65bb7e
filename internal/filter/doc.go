// Package filter reads the subset of AIP-160 filters that Medfleet's List
// methods accept: comparisons joined by AND, such as
//
//	profile = "cpap" AND labels.unit != "4-west"
//
// It owns the grammar only. Parse turns a filter into terms and String
// writes terms back in one canonical form; which fields, operators and
// values a List method allows, and what a term matches, is for the package
// that serves it (inventory, audit) to decide.
//
// filter imports only the standard library; nothing in Medfleet below it.
package filter
