#!/usr/bin/env bash
# Runs every test of Medfleet. The tests talk to real peers: libcoap's
# coap-client (Debian libcoap3-bin) replays docs/protocol.md, and Debian's
# etcd-server stands in for an external etcd cluster. They are installed here
# when missing. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

scripts/install-test-deps.sh

go test -count=1 -timeout 30m "$@" ./...
