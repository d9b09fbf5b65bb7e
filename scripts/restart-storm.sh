#!/usr/bin/env bash
# restart-storm.sh [DEVICES] [DOWN_SECONDS] [LIFETIME]: how a medfleetd absorbs its
# whole fleet coming back after a restart. DEVICES devices (default 10,000)
# report once a second from medfleet-bench (plain CoAP, each its own
# socket, a request given up after 5 s as medfleet-agent does); after a steady minute medfleetd is killed (SIGKILL), stays down
# DOWN_SECONDS (default 10), and starts again on the same data and ports.
# The devices' retransmissions then arrive together; with a registration
# LIFETIME (seconds, default 60) shorter than the outage, their
# registrations have lapsed too, and every device registers again.
# Printed: medfleetd's time from start to ready (/healthz answering),
# and, second by second from the restart, the accepted reports and the
# registrations (from /metrics), until the accepted rate is back to 99 %
# of the offered one. Loopback only; stops by itself.
#
# DTLS=1 (environment) runs the same storm over DTLS: medfleet-bench --dtls
# first creates the devices and issues their PSKs through medfleetd's gRPC
# API (medfleetd runs with --insecure-grpc, and makes its own CA in
# DATA_DIR/tls, which PSK sessions do not need), then each device reports
# over its own session. The restarted medfleetd has no session and drops the
# old ones' records unanswered: a device shakes hands again once its report
# in flight got no answer for 5 s (--request-timeout 5s, medfleet-agent's
# request timeout; the devices use it over plain CoAP too). The handshakes
# accepted, and those medfleetd dropped over coap.max_handshakes_per_second,
# are printed each second too, and the storm is followed for 180 s.
set -euo pipefail
devices=${1:-10000}
down=${2:-10}
lifetime=${3:-60}
dtls=${DTLS:-0}
follow=120 # seconds after the restart
[ "$dtls" = 1 ] && follow=180
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $load $srv 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/" ./cmd/medfleetd ./cmd/medfleet-bench

# medfleetd's ports lie below the ephemeral range (32768 and up), so that no
# device's new socket can take one while medfleetd is down: over DTLS the
# devices open new sockets to shake hands again.
free() { python3 -c '
import random, socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
while True:
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", random.randrange(20000, 32768)))
        print(s.getsockname()[1])
        break
    except OSError:
        s.close()
' "$1"; }
port() { free tcp; }
udp() { free udp; }
coap=127.0.0.1:$(udp)
coaps=127.0.0.1:$(udp)
grpc=127.0.0.1:$(port)
http=127.0.0.1:$(port)
args=(--data-dir "$tmp/data" --report-interval 1s --insecure-grpc --coap-dtls-listen "$coaps"
	--grpc-listen "$grpc" --http-listen "$http"
	--etcd-listen-client http://127.0.0.1:$(port) --etcd-listen-peer http://127.0.0.1:$(port))
load_args=(--server "$coap" --request-timeout 5s)
if [ "$dtls" = 1 ]; then
	load_args=(--server "$coaps" --request-timeout 5s --dtls --grpc "$grpc")
else
	args+=(--insecure-coap --coap-listen "$coap")
fi
start() {
	local t0=$(date +%s.%N)
	"$tmp/medfleetd" "${args[@]}" 2>>"$tmp/server.log" &
	srv=$!
	until curl -sf "http://$http/healthz" >/dev/null 2>&1; do
		kill -0 $srv 2>/dev/null || { tail -3 "$tmp/server.log" >&2; exit 1; }
		sleep 0.05
	done
	awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "medfleetd ready in %.2f s\n", t1 - t0 }'
}
# Counters from /metrics: accepted reports, registrations answered 2.01,
# DTLS handshakes done and dropped over the rate limit.
counters() {
	curl -s "http://$http/metrics" | awk '
		/^medfleet_ingest_reports_total\{.*result="accepted"/ { a += $NF }
		/^medfleet_coap_requests_total\{/ && /coap_route="\/rd"/ && /coap_response_code="2.01"/ { r += $NF }
		/^medfleet_coap_dtls_handshakes_total\{.*result="ok"/ { h += $NF }
		/^medfleet_coap_dtls_handshakes_total\{.*result="throttled"/ { th += $NF }
		END { printf "%d %d %d %d\n", a, r, h, th }'
}

start
"$tmp/medfleet-bench" "${load_args[@]}" --devices "$devices" --rate 1 --lifetime "$lifetime" --warmup 10s \
	--duration $((100 + down + follow))s >"$tmp/load.txt" 2>"$tmp/load.log" &
load=$!
if [ "$dtls" = 1 ]; then # the run, and the 90 s below, start once the devices have their PSKs
	until grep -q "$devices of $devices devices provisioned" "$tmp/load.log"; do
		kill -0 $load 2>/dev/null || { cat "$tmp/load.log" >&2; exit 1; }
		sleep 0.2
	done
	tail -1 "$tmp/load.log"
fi
sleep 90 # registration, then a steady minute
read a0 _ < <(counters)
sleep 10
read a1 _ < <(counters)
echo "before: $(((a1 - a0) / 10)) reports accepted/s"
kill -KILL $srv
wait $srv 2>/dev/null || true
sleep "$down"
start
if [ "$dtls" = 1 ]; then
	echo "second  accepted/s  registrations/s  handshakes/s  throttled/s"
else
	echo "second  accepted/s  registrations/s"
fi
read pa pr ph pt < <(counters)
for ((s = 1; s <= follow; s++)); do
	sleep 1
	read a r h th < <(counters)
	if [ "$dtls" = 1 ]; then
		echo "$s $((a - pa)) $((r - pr)) $((h - ph)) $((th - pt))"
	else
		echo "$s $((a - pa)) $((r - pr))"
	fi
	if ((a - pa >= devices * 99 / 100 && s > 3 && (lifetime >= down || r > devices * 99 / 100))); then
		echo "back to 99 % of the offered rate $s s after the restart"
		break
	fi
	pa=$a pr=$r ph=$h pt=$th
done
wait $load 2>/dev/null || true # it stops by itself
cat "$tmp/load.txt"
