#!/usr/bin/env bash
# firmware-delivery.sh [FW_DEVICES] [REPORTING_DEVICES] [IMAGE_MIB] [CASE...]: the
# time medfleetd takes to deliver one image to FW_DEVICES devices at once
# (GET /fw/{sha256}, protocol 7.1), and the report latency of
# REPORTING_DEVICES other devices (1 report/s each) before, during and after.
#
# For each CASE, a fresh medfleetd (embedded etcd in a temporary directory,
# plain CoAP and gRPC on free loopback ports) gets a signed random image of
# IMAGE_MIB MiB uploaded with medfleetctl, then medfleet-bench runs both
# fleets against it, every device on its own socket, with --pid of the
# server. A CASE is MODE[:MAX_DOWNLOADS]: MODE non (NON block requests, as
# medfleet-agent sends) or con (CON requests, as generic clients send, which
# go-coap answers piggy-backed and keeps for 247 s); MAX_DOWNLOADS, when
# given, is the server's coap.max_downloads (default 256) set by a config
# file. Default cases: non con.
#
#   scripts/firmware-delivery.sh 1000 1000 4 non con non:1000
#
# Environment: FW_TIMEOUT (default 600s) bounds each case's downloads;
# WARMUP (20s), BEFORE (10s) and AFTER (10s) are medfleet-bench's --warmup,
# --fw-before and --fw-after; OUT, when set, is a directory that receives
# each case's JSON and server log. Prints one block per case and a summary
# table. Loopback only; every process stops by itself, and on exit the
# script stops what it started and removes its temporary directory.
set -euo pipefail
fw_devices=${1:-1000}
devices=${2:-1000}
mib=${3:-4}
shift $(($# < 3 ? $# : 3))
cases=("$@")
((${#cases[@]})) || cases=(non con)
fw_timeout=${FW_TIMEOUT:-600s}
warmup=${WARMUP:-20s}
before=${BEFORE:-10s}
after=${AFTER:-10s}
model="Bench IP-100"
version=9.9.9

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
srv=
cleanup() {
	if [ -n "$srv" ]; then
		kill -TERM "$srv" 2>/dev/null || true
		wait "$srv" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$tmp/" ./cmd/medfleetd ./cmd/medfleetctl ./cmd/medfleet-bench
udp() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
tcp() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ctl() { "$tmp/medfleetctl" --server "$grpc" --insecure "$@"; }

"$tmp/medfleetctl" firmware keygen --out "$tmp/signing.key" >/dev/null
head -c $((mib << 20)) /dev/urandom >"$tmp/image.bin"
"$tmp/medfleetctl" firmware sign --key "$tmp/signing.key" --model "$model" --version "$version" \
	--out "$tmp/image.sig" "$tmp/image.bin" >/dev/null
sha=$(sha256sum "$tmp/image.bin" | cut -d' ' -f1)
echo "image: $mib MiB, sha256 $sha; $fw_devices downloading devices, $devices reporting devices at 1 report/s"
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3); $(date -u +%Y-%m-%dT%H:%M:%SZ)"

# start_server NAME MAX_DOWNLOADS: a fresh medfleetd with the image uploaded.
start_server() {
	local name=$1 maxdl=$2 config=()
	if [ -n "$maxdl" ]; then
		printf 'coap:\n  max_downloads: %d\n' "$maxdl" >"$tmp/$name.yaml"
		config=(--config "$tmp/$name.yaml")
	fi
	coap=127.0.0.1:$(udp)
	grpc=127.0.0.1:$(tcp)
	local http=127.0.0.1:$(tcp)
	"$tmp/medfleetd" "${config[@]}" --data-dir "$tmp/data-$name" --insecure-coap --insecure-grpc \
		--firmware-keys "$tmp/signing.pub" --report-interval 1s --coap-listen "$coap" --grpc-listen "$grpc" \
		--http-listen "$http" --etcd-listen-client "http://127.0.0.1:$(tcp)" \
		--etcd-listen-peer "http://127.0.0.1:$(tcp)" 2>"$tmp/$name.log" &
	srv=$!
	local i
	for ((i = 0; i < 60; i++)); do
		curl -fsS -m 1 "http://$http/healthz" >/dev/null 2>&1 && break
		kill -0 "$srv" 2>/dev/null || { cat "$tmp/$name.log" >&2; echo "medfleetd exited" >&2; exit 1; }
		sleep 0.5
	done
	((i < 60)) || { echo "medfleetd not healthy after 30 s" >&2; exit 1; }
	ctl --timeout 60s firmware upload --model "$model" --version "$version" --sig "$tmp/image.sig" "$tmp/image.bin" >/dev/null
}

stop_server() {
	kill -TERM "$srv"
	timeout 30 tail --pid="$srv" -f /dev/null || kill -KILL "$srv"
	wait "$srv" || true
	srv=
}

n=0
names=()
for c in "${cases[@]}"; do
	n=$((n + 1))
	mode=${c%%:*}
	maxdl=
	[[ $c == *:* ]] && maxdl=${c#*:}
	case $mode in
	non) flags=() ;;
	con) flags=(--fw-con) ;;
	*) echo "case $c: want non or con, optionally :MAX_DOWNLOADS" >&2; exit 2 ;;
	esac
	name=$n-${c/:/-} # a case may be repeated: each run has its own server and files
	names+=("$name")
	start_server "$name" "$maxdl"
	echo
	echo "== $c: coap.max_downloads ${maxdl:-256 (default)}"
	cmd=("$tmp/medfleet-bench" --server "$coap" --devices "$devices" --rate 1 --warmup "$warmup" --pid "$srv"
		--id-prefix "$name" --fw-sha "$sha" --fw-devices "$fw_devices" --fw-before "$before" --fw-after "$after"
		--fw-timeout "$fw_timeout" "${flags[@]}")
	echo "medfleet-bench ${cmd[*]:1}" | sed "s|$sha|\$SHA|"
	# the bench stops by itself; timeout is the backstop
	timeout --signal=INT --kill-after=30s 1h "${cmd[@]}" --json >"$tmp/$name.json"
	python3 - "$tmp/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["firmware"]
print(f"downloads: {f['complete']}/{f['devices']} complete and verified, {f['failed']} failed, {f['hash_mismatches']} hash mismatches, {f['unfinished']} unfinished")
print(f"completion {f['completion_s']:.1f} s; per device p50 {f['device_time_s']['p50']:.1f} p90 {f['device_time_s']['p90']:.1f} p99 {f['device_time_s']['p99']:.1f} s; "
      f"transfer alone p50 {f['transfer_time_s']['p50']:.1f} s")
print(f"{f['blocks_per_s']:.0f} blocks/s, {f['mb_per_s']:.2f} MB/s; {f['max_age_waits']} 5.03 waits, {f['retransmissions']} retransmissions; "
      f"block rtt p50 {f['block_rtt_ms']['p50']:.2f} p99 {f['block_rtt_ms']['p99']:.2f} ms")
for e in f.get("errors") or []:
    print("error:", e)
print(f"{'phase':7} {'s':>6} {'acked/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8} {'timeouts':>8} {'srv CPU%':>8} {'srv RSS MiB':>11} {'bench CPU%':>10} {'machine CPU%':>12}")
for p in r["phases"]:
    l, s, b, m = p["latency_ms"], p.get("server") or {}, p.get("bench") or {}, p.get("machine") or {}
    print(f"{p['name']:7} {p['duration_s']:6.1f} {p['acked_per_s']:8.1f} {l['p50']:8.3f} {l['p90']:8.3f} {l['p99']:8.3f} {l['p999']:9.3f} {l['max']:8.1f} "
          f"{p['timeouts']:8d} {s.get('cpu_percent_of_one_core', 0):8.1f} {s.get('peak_rss_mib', 0):11.0f} {b.get('cpu_percent_of_one_core', 0):10.1f} "
          f"{m.get('cpu_percent_of_one_core', 0):12.1f}")
PY
	stop_server
	echo "server log: $(grep -c 'level=ERROR' "$tmp/$name.log" || true) ERROR lines, $(grep -c 'level=WARN' "$tmp/$name.log" || true) WARN lines"
	if [ -n "${OUT:-}" ]; then
		mkdir -p "$OUT"
		cp "$tmp/$name.json" "$tmp/$name.log" "$OUT/"
	fi
done

echo
python3 - "$tmp" "${names[@]}" <<'PY'
import json, sys
tmp, cases = sys.argv[1], sys.argv[2:]
print(f"{'case':10} {'done':>9} {'completion s':>12} {'p50 s':>7} {'p99 s':>7} {'blocks/s':>9} {'MB/s':>6} {'5.03s':>6} {'retrans':>7} "
      f"{'report p99 before/during/after ms':>34} {'CPU% srv/bench/machine during':>29} {'srv RSS MiB peak':>16}")
for c in cases:
    r = json.load(open(f"{tmp}/{c}.json"))
    f, ph = r["firmware"], {p["name"]: p for p in r["phases"]}
    p99 = "/".join(f"{ph[n]['latency_ms']['p99']:.1f}" if n in ph else "-" for n in ("before", "during", "after"))
    cpu = "/".join(f"{(ph.get('during', {}).get(k) or {}).get('cpu_percent_of_one_core', 0):.0f}" for k in ("server", "bench", "machine"))
    print(f"{c:10} {f['complete']:4d}/{f['devices']:<4d} {f['completion_s']:12.1f} {f['device_time_s']['p50']:7.1f} {f['device_time_s']['p99']:7.1f} "
          f"{f['blocks_per_s']:9.0f} {f['mb_per_s']:6.2f} {f['max_age_waits']:6d} {f['retransmissions']:7d} {p99:>34} "
          f"{cpu:>29} {(r.get('server') or {}).get('peak_rss_mib', 0):16.0f}")
PY
