#!/usr/bin/env bash
# bench-smoke.sh: a 30-second ingest run that CI makes to catch a collapse,
# not to measure: medfleetd (embedded etcd, plain CoAP) and 1,000
# medfleet-bench devices reporting once a second, each with its own socket.
# It fails only far below what the machine does (docs/benchmarks.md): fewer
# than 80 % of the offered reports acknowledged, more than 1 % timeouts, or
# a p99 over 1 s. The full runs are ingest-baselines.sh and friends.
# Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/" ./cmd/medfleetd ./cmd/medfleet-bench
port() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
tcp() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
addr=127.0.0.1:$(port)
"$tmp/medfleetd" --data-dir "$tmp/data" --report-interval 1s --insecure-coap --coap-listen "$addr" \
	--coap-dtls-listen 127.0.0.1:$(port) --grpc-listen 127.0.0.1:$(tcp) --http-listen 127.0.0.1:$(tcp) \
	--etcd-listen-client http://127.0.0.1:$(tcp) --etcd-listen-peer http://127.0.0.1:$(tcp) 2>"$tmp/server.log" &
srv=$!
sleep 3
"$tmp/medfleet-bench" --server "$addr" --devices 1000 --rate 1 --warmup 5s --duration 25s --pid "$srv" --json >"$tmp/run.json"
python3 - "$tmp/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
offered = r["devices"] * r["rate_per_device"]
acked, p99, timeouts = r["acked_per_s"], r["latency_ms"]["p99"], r["timeouts"]
print(f"bench smoke: {acked:.0f} of {offered:.0f} reports/s acknowledged, p99 {p99:.1f} ms, {timeouts} timeouts")
problems = []
if acked < 0.8 * offered:
    problems.append("under 80 % acknowledged")
if timeouts > 0.01 * r["sent"]:
    problems.append("over 1 % timeouts")
if p99 > 1000:
    problems.append("p99 over 1 s")
if problems:
    sys.exit("bench smoke failed: " + ", ".join(problems))
PY
