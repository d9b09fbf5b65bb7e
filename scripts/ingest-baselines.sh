#!/usr/bin/env bash
# ingest-baselines.sh [DEVICES] [RATE] [SECONDS] [WARMUP]: the same load from
# medfleet-bench, one target after the other, against
#   libcoap  libcoap's coap-server-notls (Debian libcoap3-bin), which answers
#            4.04 to POST /dp: a C CoAP stack doing the least work there is;
#   go-coap  medfleet-bench serve-baseline: go-coap with one handler that
#            answers 2.04, configured like medfleetd's gateway;
#   medfleetd with its embedded etcd: registration, SenML decoding, ingest,
#            group-committed checkpoints, plain CoAP on its own read loop;
#   medfleetd-gocoap  the same with coap.plain_server go-coap: go-coap's UDP
#            server, as medfleetd served plain CoAP before;
#   medfleetd-dtls  medfleetd over DTLS: medfleet-bench --dtls talks to its
#            DTLS listener (--coap-dtls-listen), each device in its own PSK
#            session, after creating the devices and issuing their PSKs through
#            its gRPC API (--grpc; medfleetd runs with --insecure-grpc, so the
#            bench needs no credential, and no CA: medfleetd makes its own in
#            DATA_DIR/tls, which PSK sessions do not use);
#   medfleetd-dtls-gocoap  the same with coap.dtls_server go-coap (a config key
#            medfleetd must know: it refuses unknown keys).
# TARGETS (environment) chooses some of them, e.g. TARGETS="medfleetd medfleetd-dtls";
# the default is the plain CoAP ones, libcoap to medfleetd-gocoap.
# Each device has its own socket (over DTLS, its own session) and offers RATE
# reports/s (open loop), so the answered rate is what each server sustains. Runs must last longer than
# 247 s: go-coap keeps each response that long and scans it on every datagram
# from the same peer, so shorter runs overstate it. Prints one line per
# target and the ratios to libcoap, for medfleetd its etcd transactions a
# second over the measured window (from its /metrics), and for the DTLS
# targets the provisioning time and the handshakes. Loopback only; stops by itself.
set -euo pipefail
devices=${1:-2000}
rate=${2:-25}
seconds=${3:-270}
warmup=${4:-30}
cd "$(dirname "$0")/.."
command -v coap-server-notls >/dev/null || scripts/install-test-deps.sh
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/" ./cmd/medfleetd ./cmd/medfleet-bench
port() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

run() { # name, extra bench flags, server command...
	local name=$1 flags=$2
	shift 2
	"$@" >"$tmp/$name.log" 2>&1 &
	srv=$!
	sleep 3
	"$tmp/medfleet-bench" --server "$addr" --devices "$devices" --rate "$rate" --warmup "${warmup}s" \
		--duration "${seconds}s" --pid "$srv" --id-prefix "$name" $flags --json >"$tmp/$name.json"
	kill -TERM "$srv"
	wait "$srv" || true
	srv=
}

targets=${TARGETS:-libcoap gocoap medfleetd medfleetd-gocoap}
tcp() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
printf 'coap:\n  plain_server: go-coap\n' >"$tmp/gocoap.yaml"
printf 'coap:\n  dtls_server: go-coap\n' >"$tmp/dtls-gocoap.yaml"
for target in $targets; do
	addr=127.0.0.1:$(port)
	case $target in
	libcoap) run libcoap --baseline coap-server-notls -A 127.0.0.1 -p "${addr##*:}" ;;
	gocoap) run gocoap --baseline "$tmp/medfleet-bench" serve-baseline --listen "$addr" ;;
	medfleetd | medfleetd-gocoap | medfleetd-dtls | medfleetd-dtls-gocoap)
		http=127.0.0.1:$(tcp)
		config=() flags="--metrics http://$http/metrics" grpc=127.0.0.1:$(tcp)
		case $target in
		medfleetd-gocoap) config=(--config "$tmp/gocoap.yaml") ;;
		medfleetd-dtls-gocoap) config=(--config "$tmp/dtls-gocoap.yaml") ;;
		esac
		case $target in
		medfleetd-dtls*) # the bench on the DTLS listener, devices and PSKs made over gRPC
			listen=(--insecure-grpc --coap-dtls-listen "$addr")
			flags="$flags --dtls --grpc $grpc"
			;;
		*) listen=(--insecure-coap --coap-listen "$addr" --coap-dtls-listen 127.0.0.1:$(port)) ;;
		esac
		run "$target" "$flags" "$tmp/medfleetd" "${config[@]}" --data-dir "$tmp/data-$target" --report-interval 1s \
			"${listen[@]}" --grpc-listen "$grpc" --http-listen "$http" \
			--etcd-listen-client http://127.0.0.1:$(tcp) --etcd-listen-peer http://127.0.0.1:$(tcp)
		;;
	*) echo "unknown target $target" >&2; exit 2 ;;
	esac
done

python3 - "$tmp" "$devices" "$rate" "$seconds" "$warmup" $targets <<'PY'
import json, sys
tmp, devices, rate, seconds, warmup = sys.argv[1:6]
targets = sys.argv[6:]
print(f"{devices} devices x {rate} reports/s offered ({int(devices)*float(rate):.0f}/s), {warmup} s warm-up, {seconds} s measured")
print(f"{'target':16} {'answered/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'timeouts':>9} {'server CPU':>11} {'RSS MiB':>8} {'answers/core-s':>15}")
res = {}
for name in targets:
    r = json.load(open(f"{tmp}/{name}.json"))
    s = r.get("server") or {}
    cpu = s.get("cpu_percent_of_one_core", 0)
    rss = s.get("peak_rss_mib", 0)
    ans = r["answered_per_s"]
    res[name] = ans
    eff = ans / (cpu / 100) if cpu else 0
    lat = r["latency_ms"]
    print(f"{name:16} {ans:11.0f} {lat['p50']:8.3f} {lat['p99']:8.3f} {lat['p999']:9.3f} {r['timeouts']:9d} {cpu:10.0f}% {rss:8.0f} {eff:15.0f}")
if "libcoap" in res:
    base = res["libcoap"] or 1
    print("ratios to libcoap: " + ", ".join(f"{n} {v/base:.2f}" for n, v in res.items() if n != "libcoap"))
for name in targets:
    c = json.load(open(f"{tmp}/{name}.json")).get("server_counters")
    if c:
        txns = c.get("etcd_txns_per_s") or {}
        print(f"{name}: {c.get('reports_accepted_per_s', 0):.0f} reports accepted/s, etcd transactions/s: "
              + (", ".join(f"{op} {v:.1f}" for op, v in sorted(txns.items())) or c.get("error", "none")))
for name in targets:
    d = json.load(open(f"{tmp}/{name}.json")).get("dtls")
    if d:
        h = d["handshake_ms"]
        print(f"{name}: provisioning {d['provisioning_s']:.1f} s, {d['handshakes']} handshakes (p50 {h['p50']:.1f} ms, "
              f"p99 {h['p99']:.1f} ms), {d['handshake_failures']} failed, {d['sessions_dropped']} sessions dropped")
PY
