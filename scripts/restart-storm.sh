#!/usr/bin/env bash
# restart-storm.sh [DEVICES] [DOWN_SECONDS] [LIFETIME]: how a medfleetd absorbs its
# whole fleet coming back after a restart. DEVICES devices (default 10,000)
# report once a second from medfleet-bench (plain CoAP, each its own
# socket); after a steady minute medfleetd is killed (SIGKILL), stays down
# DOWN_SECONDS (default 10), and starts again on the same data and ports.
# The devices' retransmissions then arrive together; with a registration
# LIFETIME (seconds, default 60) shorter than the outage, their
# registrations have lapsed too, and every device registers again.
# Printed: medfleetd's time from start to ready (its gRPC port answering),
# and, second by second from the restart, the accepted reports and the
# registrations (from /metrics), until the accepted rate is back to 99 %
# of the offered one. Loopback only; stops by itself.
set -euo pipefail
devices=${1:-10000}
down=${2:-10}
lifetime=${3:-60}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $load $srv 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/" ./cmd/medfleetd ./cmd/medfleet-bench

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
udp() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
coap=127.0.0.1:$(udp)
http=127.0.0.1:$(port)
args=(--data-dir "$tmp/data" --report-interval 1s --insecure-grpc --insecure-coap --coap-listen "$coap"
	--coap-dtls-listen 127.0.0.1:$(udp) --grpc-listen 127.0.0.1:$(port) --http-listen "$http"
	--etcd-listen-client http://127.0.0.1:$(port) --etcd-listen-peer http://127.0.0.1:$(port))
start() {
	local t0=$(date +%s.%N)
	"$tmp/medfleetd" "${args[@]}" 2>>"$tmp/server.log" &
	srv=$!
	until curl -sf "http://$http/healthz" >/dev/null 2>&1; do sleep 0.05; done
	awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "medfleetd ready in %.2f s\n", t1 - t0 }'
}
# Counters from /metrics: accepted reports, and registrations answered 2.01.
counters() {
	curl -s "http://$http/metrics" | awk '
		/^medfleet_ingest_reports_total\{.*result="accepted"/ { a += $NF }
		/^medfleet_coap_requests_total\{/ && /coap_route="\/rd"/ && /coap_response_code="2.01"/ { r += $NF }
		END { printf "%d %d\n", a, r }'
}

start
"$tmp/medfleet-bench" --server "$coap" --devices "$devices" --rate 1 --lifetime "$lifetime" --warmup 10s --duration $((100 + down + 120))s \
	>"$tmp/load.txt" 2>"$tmp/load.log" &
load=$!
sleep 90 # registration, then a steady minute
read a0 _ < <(counters)
sleep 10
read a1 _ < <(counters)
echo "before: $(((a1 - a0) / 10)) reports accepted/s"
kill -KILL $srv
wait $srv 2>/dev/null || true
sleep "$down"
start
echo "second  accepted/s  registrations/s"
read pa pr < <(counters)
for ((s = 1; s <= 120; s++)); do
	sleep 1
	read a r < <(counters)
	echo "$s $((a - pa)) $((r - pr))"
	if ((a - pa >= devices * 99 / 100 && s > 3 && (lifetime >= down || r > devices * 99 / 100))); then
		echo "back to 99 % of the offered rate $s s after the restart"
		break
	fi
	pa=$a pr=$r
done
wait $load 2>/dev/null || true # it stops by itself
cat "$tmp/load.txt"
