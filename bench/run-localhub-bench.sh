#!/usr/bin/env bash
# Ranged GET of a stored xorb: hf-local-hub's signed fetch URL vs nginx (sendfile on) serving
# the very same file on loopback, measured in the same run with wrk (keep-alive, same Range
# header, same duration and connections). Bounded in time and self-cleaning: every process it
# starts is stopped and its temp dir removed on exit, even on failure.
#
# Usage: bench/run-localhub-bench.sh [BUILD_DIR]
#   BENCH_DURATION (s, default 5), BENCH_CONNECTIONS (default 8), BENCH_ROUNDS (default 3),
#   BENCH_FILE_BYTES (default 16000000; at least 5000000, one target is bytes 4000000-4999999).
# Needs: hf-local-hub built in BUILD_DIR (default $HFM_BUILD_DIR or ./build), node with
# tests/conformance/node_modules installed, nginx, wrk, curl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
BUILD=${1:-${HFM_BUILD_DIR:-$ROOT/build}}
BIN=$BUILD/src/bin/hf-local-hub
DURATION=${BENCH_DURATION:-5}
CONNS=${BENCH_CONNECTIONS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
FILE_BYTES=${BENCH_FILE_BYTES:-16000000}
TOKEN=hf_localhub_bench_token

require_tools node nginx wrk curl sha256sum
((FILE_BYTES >= 5000000)) || { echo "BENCH_FILE_BYTES must be at least 5000000" >&2; exit 2; }
require_binaries "$BUILD/src/bin" hf-local-hub

TMP=$(mktemp -d /tmp/hfm-localhub-bench.XXXXXX)
chmod 755 "$TMP"  # nginx workers run as an unprivileged user
HUB_PID=""
NGINX_PID=""
cleanup() {
  stop_local_hub
  stop_pid "$NGINX_PID"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- hf-local-hub -------------------------------------------------------------------------
start_local_hub "$BIN" "$TMP/data" "$TMP/hub.log" --token "user:$TOKEN"

timeout 120 node "$ROOT/bench/localhub/prepare.mjs" "$HUB_URL" "$TOKEN" "$FILE_BYTES" >"$TMP/targets.jsonl"

# --- nginx on the same stored xorbs -------------------------------------------------------
NGINX_PORT=$(free_port)
cat >"$TMP/nginx.conf" <<EOF
worker_processes 2;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path $TMP/nginx-tmp;
  proxy_temp_path $TMP/nginx-tmp;
  fastcgi_temp_path $TMP/nginx-tmp;
  uwsgi_temp_path $TMP/nginx-tmp;
  scgi_temp_path $TMP/nginx-tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $TMP/data/cas/xorbs;
  }
}
EOF
mkdir -p "$TMP/nginx-tmp"
nginx -p "$TMP" -c "$TMP/nginx.conf" -g 'daemon off;' 2>"$TMP/nginx-start.log" &
NGINX_PID=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$TMP/nginx-start.log" >&2; exit 1; }
  sleep 0.1
done

# --- measure ------------------------------------------------------------------------------
json_field() { node -e "const o=JSON.parse(process.argv[1]); console.log(o[process.argv[2]])" "$1" "$2"; }

# One wrk run; prints "requests/s bytes/s".
wrk_once() {
  local url=$1 range=$2 out rps bps
  out=$(timeout $((DURATION + 30)) wrk -t2 -c"$CONNS" -d"${DURATION}s" -H "Range: $range" "$url")
  if grep -q "Non-2xx" <<<"$out"; then echo "wrk saw errors for $url:" >&2; echo "$out" >&2; exit 1; fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  bps=$(awk '/Transfer\/sec/ {v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2);
        m=(u=="GB")?1073741824:(u=="MB")?1048576:(u=="KB")?1024:1; print n*m}' <<<"$out")
  echo "$rps $bps"
}

# Alternates hub and nginx runs (the machine is shared, so load drifts) and keeps the best
# of BENCH_ROUNDS for each; prints "hub_rps hub_bps nginx_rps nginx_bps".
measure_pair() {
  local hub_url=$1 ngx_url=$2 range=$3 hr=0 hb=0 nr=0 nb=0 r b
  for _ in $(seq 1 "$ROUNDS"); do
    read -r r b < <(wrk_once "$hub_url" "$range")
    if awk -v a="$r" -v c="$hr" 'BEGIN{exit !(a>c)}'; then hr=$r; hb=$b; fi
    read -r r b < <(wrk_once "$ngx_url" "$range")
    if awk -v a="$r" -v c="$nr" 'BEGIN{exit !(a>c)}'; then nr=$r; nb=$b; fi
  done
  echo "$hr $hb $nr $nb"
}

printf '\nRanged GET of a stored xorb over loopback (wrk -t2 -c%s -d%ss, best of %s)\n' \
  "$CONNS" "$DURATION" "$ROUNDS"
printf '%-11s %10s | %12s %10s | %12s %10s | %6s\n' target "range B" "hub req/s" "hub MB/s" \
  "nginx req/s" "nginx MB/s" ratio
while IFS= read -r line; do
  label=$(json_field "$line" label)
  url=$(json_field "$line" url)
  range=$(json_field "$line" range)
  bytes=$(json_field "$line" bytes)
  xorb=$(json_field "$line" xorbPath)
  nginx_url="http://127.0.0.1:$NGINX_PORT/$xorb"
  # Both servers must return the same bytes before their speed means anything.
  a=$(curl -sf -H "Range: $range" "$url" | sha256sum)
  b=$(curl -sf -H "Range: $range" "$nginx_url" | sha256sum)
  [[ $a == "$b" ]] || { echo "$label: hf-local-hub and nginx bodies differ" >&2; exit 1; }
  read -r hub_rps hub_bps ngx_rps ngx_bps < <(measure_pair "$url" "$nginx_url" "$range")
  awk -v l="$label" -v n="$bytes" -v hr="$hub_rps" -v hb="$hub_bps" -v nr="$ngx_rps" -v nb="$ngx_bps" \
    'BEGIN { printf "%-11s %10d | %12.1f %10.1f | %12.1f %10.1f | %5.2fx\n", l, n, hr, hb/1048576, nr, nb/1048576, hr/nr }'
done <"$TMP/targets.jsonl"
echo "(ratio = hf-local-hub req/s ÷ nginx req/s; target ≥ 0.80x)"
