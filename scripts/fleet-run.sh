#!/usr/bin/env bash
# fleet-run.sh DEVICES SECONDS: runs medfleetd (embedded etcd in a temporary
# directory) and a simulated fleet in a second process, every device
# reporting once a second, then prints the server's CPU use and peak RSS,
# the simulator's RSS, and the server's ingest and checkpoint totals.
# Loopback only; stops by itself.
set -euo pipefail
devices=${1:-1000}
seconds=${2:-60}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $sim $srv 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/medfleetd" ./cmd/medfleetd
go build -o "$tmp/medfleet-agent" ./cmd/medfleet-agent

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
coap=127.0.0.1:$(port)
"$tmp/medfleetd" --data-dir "$tmp/data" --grpc-listen 127.0.0.1:$(port) --http-listen 127.0.0.1:$(port) \
	--coap-listen "$coap" --etcd-listen-client http://127.0.0.1:$(port) --etcd-listen-peer http://127.0.0.1:$(port) \
	--report-interval 1s 2>"$tmp/server.log" &
srv=$!
sleep 2
"$tmp/medfleet-agent" simulate --server "$coap" --devices "$devices" --interval 1s --lifetime 60s 2>"$tmp/sim.log" &
sim=$!

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
rss() { awk '/VmRSS/{print $2}' /proc/$1/status; }
sleep 10 # registrations spread over the first interval; measure the steady state
c0=$(cpu $srv); t0=$(date +%s.%N); peak=0
for ((i = 0; i < seconds; i++)); do
	sleep 1
	r=$(rss $srv); ((r > peak)) && peak=$r
done
c1=$(cpu $srv); t1=$(date +%s.%N)
simrss=$(rss $sim)
kill -TERM $sim; wait $sim || true
kill -TERM $srv; wait $srv || true
awk -v c0=$c0 -v c1=$c1 -v t0=$t0 -v t1=$t1 -v hz=$ticks -v peak=$peak -v simrss=$simrss -v n=$devices 'BEGIN {
	printf "devices %d, steady state %.0f s: server CPU %.1f%% of one core, server peak RSS %.0f MiB, simulator RSS %.0f MiB\n",
		n, t1-t0, 100*(c1-c0)/hz/(t1-t0), peak/1024, simrss/1024 }'
grep 'medfleetd stopped' "$tmp/server.log" | sed 's/^.*msg=/server: /'
