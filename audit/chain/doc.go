// Package chain is the audit log's hash chain on its own: the canonical
// encoding and hash of a record, and the Verifier that checks a log page by
// page. It imports nothing but the generated proto package, so that a
// client (medfleetctl audit verify) can check a log without linking etcd.
package chain
