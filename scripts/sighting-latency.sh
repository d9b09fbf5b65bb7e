#!/usr/bin/env bash
# sighting-latency.sh [DEVICES] [MOVES]: the sighting-to-watch latency of a
# medfleetd loaded by DEVICES devices reporting once a second (default
# 10,000), each process on its own: medfleetd (embedded etcd in a temporary
# directory, the sample facility, location.dwell 0), medfleet-bench (the
# load, plain CoAP), and the probe (BenchmarkSightingToWatchUnderLoad in
# server/, which moves a tagged pump MOVES times, every 250 ms, through a
# reader's CoAP reports and times each move to its WatchLocations event).
# Loopback only; stops by itself.
set -euo pipefail
devices=${1:-10000}
moves=${2:-120}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $load $srv 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/" ./cmd/medfleetd ./cmd/medfleet-bench
go test -c -o "$tmp/server.test" ./server

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
udp() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
coap=127.0.0.1:$(udp)
grpc=127.0.0.1:$(port)
printf 'location:\n  dwell: 0s\n' >"$tmp/medfleetd.yaml"
"$tmp/medfleetd" --config "$tmp/medfleetd.yaml" --data-dir "$tmp/data" --report-interval 1s \
	--insecure-grpc --insecure-coap --coap-listen "$coap" --coap-dtls-listen 127.0.0.1:$(udp) --grpc-listen "$grpc" --http-listen 127.0.0.1:$(port) \
	--etcd-listen-client http://127.0.0.1:$(port) --etcd-listen-peer http://127.0.0.1:$(port) \
	--facility examples/facility/hospital.yaml 2>"$tmp/server.log" &
srv=$!
sleep 3
# The load runs through the probe and a while after; its figures are printed last.
"$tmp/medfleet-bench" --server "$coap" --devices "$devices" --rate 1 --warmup 30s --duration $((moves / 4 + 60))s \
	--pid $srv >"$tmp/load.txt" 2>"$tmp/load.log" &
load=$!
sleep 40 # registration, then steady reporting
(cd server && MEDFLEET_PROBE_GRPC=$grpc MEDFLEET_PROBE_COAP=$coap "$tmp/server.test" \
	-test.run XXX -test.bench SightingToWatchUnderLoad -test.benchtime ${moves}x)
wait $load || true
echo "load ($devices devices, 1 report/s, medfleet-bench):"
cat "$tmp/load.txt"
