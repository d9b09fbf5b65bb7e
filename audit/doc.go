// Package audit owns Medfleet's append-only, hash-chained audit log: every
// mutation (an API call, allowed or denied, or a device registration)
// appends a medfleet.v1.AuditRecord, and `medfleetctl audit verify`
// recomputes the chain and names the first broken record.
//
// # The chain
//
// Records are numbered 1, 2, 3... without gaps. Each carries prev_hash, the
// hash of the record before it (32 zero bytes for record 1), and hash, the
// SHA-256 of its canonical encoding, which Hash's documentation spells out
// byte by byte:
// a version prefix, then sequence, time and every other field but name and
// hash, prev_hash included, each length-prefixed. Changing, removing,
// inserting or reordering a record breaks the link to its successor;
// changing the newest record breaks its link to the head. The Verifier
// checks all of it a page at a time, as `medfleetctl audit verify` does.
//
// # etcd layout
//
//	/medfleet/v1/audit/records/{sequence, %020d}  medfleet.v1.AuditRecord
//	/medfleet/v1/audit/head                       medfleet.v1.AuditRecord with only sequence and hash:
//	                                              the newest record
//
// Records and the head are written in one transaction that requires the head
// to be the one the writer chained from, so several medfleetd replicas can
// share one etcd and still build one chain; the loser of a race re-chains its
// batch on the new head. The transaction also requires the next record's key
// to be absent: a lost or stale head stops appends rather than overwriting
// records. Nothing here deletes or rewrites a record.
//
// Append is group-committed: one committer (Run) takes every pending record,
// up to Config.MaxBatch, into one transaction, and answers each caller with
// its result.
//
// audit imports only proto and internal packages from Medfleet; it must not
// import server, inventory, or any gRPC server package, so that every one of
// them can audit through it.
package audit
