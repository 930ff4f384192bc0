#!/usr/bin/env bash
# Registration throughput: starts build/aloha-bouncer on loopback with a temp database, registers a
# server, drives push/register with wrk (64 connections, 1 thread) and prints requests/s, latency,
# the bouncer's CPU seconds and registrations per CPU-second, idle RSS and stripped binary size.
# Usage: tools/bench/register.sh [seconds=10] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}; conns=${2:-64}
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 2; }
[ -x build/aloha-bouncer ] || { echo "build first: tools/setup.sh test or ninja -C build" >&2; exit 2; }
tmp=$(mktemp -d); trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
cat > "$tmp/c.conf" <<CONF
[server]
listen = 127.0.0.1:0
database = $tmp/db.sqlite3
log_level = ${ALOHA_BENCH_LOG_LEVEL:-warn}
[limits]
requests_per_minute = 1000000
CONF
build/aloha-bouncer serve --config "$tmp/c.conf" 2>"$tmp/log" & pid=$!
for _ in $(seq 100); do
  port=$(ss -ltnpH 2>/dev/null | grep "pid=$pid," | awk '{n=split($4,a,":"); print a[n]}' | head -1 || true)
  [ -n "$port" ] && break; sleep 0.05
done
[ -n "$port" ] || { cat "$tmp/log" >&2; echo "bouncer did not start" >&2; exit 1; }
id=$(cat /proc/sys/kernel/random/uuid | sed 's/^\(..............\)./\14/; s/^\(...................\)./\18/')
key=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 64)
while [ ${#key} -lt 64 ]; do key="${key}a"; done
curl -sf -X POST "http://127.0.0.1:$port/api/v1/remotes/server/register" \
  -d "aloha_org_id=$id&aloha_org_key=$key&hostname=bench.aloha-test.org&contact_email=a@aloha-test.org" >/dev/null
rss_idle=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }
c0=$(cpu)
wrk -t1 -c"$conns" -d"${secs}s" -s tools/bench/register.lua "http://127.0.0.1:$port" -- "$id" "$key" | tail -1 | tee "$tmp/wrk"
c1=$(cpu)
tck=$(getconf CLK_TCK)
reqs=$(sed -E 's/.*requests=([0-9]+).*/\1/' "$tmp/wrk")
cpus=$(echo "scale=2; ($c1 - $c0) / $tck" | bc)
rss_peak=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
rows=$(sqlite3 "$tmp/db.sqlite3" "select count(*) from devices" 2>/dev/null || echo "?")
strip -o "$tmp/stripped" build/aloha-bouncer
echo "bouncer CPU seconds: $cpus; registrations per CPU-second: $(echo "$reqs / $cpus" | bc)"
echo "rows stored: $rows; idle RSS: ${rss_idle} kB; peak RSS: ${rss_peak} kB; stripped binary: $(stat -c %s "$tmp/stripped") bytes"
