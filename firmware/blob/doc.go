// Package blob keeps firmware images on disk, each named by the SHA-256 of
// its bytes: {dir}/sha256/{first 2 hex digits}/{64 hex digits}. An image is
// written once, through a temporary file that is hashed while it is
// written, synced and renamed into place, so that a name always holds the
// bytes it names (Verify checks that it still does). It serves images to the
// CoAP gateway block by block from files it keeps open.
//
// It imports the standard library only: it knows nothing of artifacts'
// records in etcd, of signatures or of rollouts (package firmware above it
// does).
package blob
