// Package coap is the vocabulary of Medfleet's device protocol (v1), shared by
// the control plane's gateway and the device agent: resource paths, content
// formats, SenML records and their meaning, the registration payload and the
// desired-state response, with their codecs.
//
// docs/protocol.md is the normative text; this package implements it.
//
// It sits at the bottom of the import graph: it must not import the API
// (proto), gRPC, etcd, or any other Medfleet package, so that the agent can
// link it and stay small.
package coap
