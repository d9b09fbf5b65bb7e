#!/usr/bin/env bash
# bench-smoke.sh: a 30-second ingest run over plain CoAP and another over
# DTLS that CI makes to catch a collapse, not to measure: medfleetd
# (embedded etcd) and 1,000 medfleet-bench devices reporting once a second,
# each with its own socket (over DTLS its own session, the devices and their
# PSKs made first through the gRPC API). It fails only far below what the
# machine does (docs/benchmarks.md): fewer than 80 % of the offered reports
# acknowledged, more than 1 % timeouts, or a p99 over 1 s. The full runs are
# ingest-baselines.sh and friends. Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/" ./cmd/medfleetd ./cmd/medfleet-bench
port() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
tcp() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
coap=127.0.0.1:$(port) coaps=127.0.0.1:$(port) grpc=127.0.0.1:$(tcp)
"$tmp/medfleetd" --data-dir "$tmp/data" --report-interval 1s --insecure-coap --coap-listen "$coap" \
	--coap-dtls-listen "$coaps" --insecure-grpc --grpc-listen "$grpc" --http-listen 127.0.0.1:$(tcp) \
	--etcd-listen-client http://127.0.0.1:$(tcp) --etcd-listen-peer http://127.0.0.1:$(tcp) 2>"$tmp/server.log" &
srv=$!
sleep 3
bench() { "$tmp/medfleet-bench" --devices 1000 --rate 1 --warmup 5s --duration 25s --pid "$srv" --json "$@"; }
bench --server "$coap" --id-prefix plain >"$tmp/plain.json"
bench --server "$coaps" --id-prefix dtls --dtls --grpc "$grpc" >"$tmp/dtls.json" 2>"$tmp/dtls.log"
python3 - "$tmp/plain.json" "$tmp/dtls.json" <<'PY'
import json, sys
failed = []
for name, path in zip(("plain CoAP", "DTLS"), sys.argv[1:]):
    r = json.load(open(path))
    offered = r["devices"] * r["rate_per_device"]
    acked, p99, timeouts = r["acked_per_s"], r["latency_ms"]["p99"], r["timeouts"]
    print(f"bench smoke, {name}: {acked:.0f} of {offered:.0f} reports/s acknowledged, p99 {p99:.1f} ms, {timeouts} timeouts")
    if acked < 0.8 * offered:
        failed.append(f"{name}: under 80 % acknowledged")
    if timeouts > 0.01 * r["sent"]:
        failed.append(f"{name}: over 1 % timeouts")
    if p99 > 1000:
        failed.append(f"{name}: p99 over 1 s")
if failed:
    sys.exit("bench smoke failed: " + ", ".join(failed))
PY
