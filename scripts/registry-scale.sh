#!/usr/bin/env bash
# registry-scale.sh [DEVICES] [RESTARTS]: restart-to-ready and memory of a
# medfleetd holding DEVICES registered devices (default 100,000). The devices
# register over plain CoAP from medfleet-bench, in batches of 10,000 (one
# socket each; the batch stays under the open-file limit) that report a few
# times each, so that every device has a registry key and a status key in the
# embedded etcd. medfleetd is then stopped (SIGTERM: its last checkpoint) and
# started RESTARTS times (default 3) on the same data. Printed per start: the
# time from exec to /healthz answering, the "took" of its ready line (after
# etcd opened: loading and wiring), and its RSS once ready and 10 s later.
# Loopback only; stops by itself.
set -euo pipefail
devices=${1:-100000}
restarts=${2:-3}
batch=10000
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/" ./cmd/medfleetd ./cmd/medfleet-bench

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
udp() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
coap=127.0.0.1:$(udp)
http=127.0.0.1:$(port)
args=(--data-dir "$tmp/data" --insecure-grpc --insecure-coap --coap-listen "$coap"
	--coap-dtls-listen 127.0.0.1:$(udp) --grpc-listen 127.0.0.1:$(port) --http-listen "$http"
	--etcd-listen-client http://127.0.0.1:$(port) --etcd-listen-peer http://127.0.0.1:$(port))
rss() { awk '/^VmRSS/ { printf "%d MiB", $2 / 1024 }' "/proc/$srv/status"; }
start() {
	local t0
	t0=$(date +%s.%N)
	"$tmp/medfleetd" "${args[@]}" 2>"$tmp/server.log" &
	srv=$!
	until curl -s "http://$http/healthz" >/dev/null 2>&1; do sleep 0.02; done
	local ready
	ready=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.2f", t1 - t0 }')
	local took
	took=$(grep -o 'msg="medfleetd ready".*took=[^ ]*' "$tmp/server.log" | grep -o 'took=[^ ]*' | tail -1)
	local devs
	devs=$(curl -s "http://$http/healthz" | awk '$1 == "devices" { print $2 }')
	echo "start: ready in $ready s ($took), $devs devices, RSS $(rss) when ready"
}
stop() {
	kill -TERM "$srv"
	wait "$srv" 2>/dev/null || true
}

start
for ((i = 0; i < devices; i += batch)); do
	n=$((devices - i < batch ? devices - i : batch))
	"$tmp/medfleet-bench" --server "$coap" --devices "$n" --rate 0.5 --lifetime 3600 --id-prefix "reg$((i / batch))" \
		--warmup 20s --duration 5s >"$tmp/load.txt" 2>"$tmp/load.log" || { cat "$tmp/load.log"; exit 1; }
	echo "batch $((i / batch + 1)): medfleetd knows $(curl -s "http://$http/healthz" | awk '$1 == "devices" { print $2 }') devices"
done
stop
for ((r = 1; r <= restarts; r++)); do
	start
	sleep 10
	echo "  10 s later: RSS $(rss)"
	stop
done
