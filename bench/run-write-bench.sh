#!/usr/bin/env bash
# Write-path benchmark: hf-mount-fuse (streaming writes) into a bucket of hf-local-hub on
# loopback, against two references that move the same bytes in the same run.
#
#   bench/run-write-bench.sh [BIN_DIR]      (default BIN_DIR: build-wtest/src/bin)
#   env: BENCH_SIZE_MIB (default 2048)      size of the throughput file
#        BENCH_REWRITE_MIB (default 1024)   size of the file written twice (dedup row)
#        BENCH_CLOSE_SAMPLES (default 5)    1 MiB closes timed (median reported)
#        BENCH_TIMEOUT (default 900)        seconds allowed for any single step
#        BENCH_DATA (default random)        random: incompressible bytes; mixed: random with a
#                                           96-byte zero run ending every 4 KiB (~2 % LZ4-
#                                           compressible, so the mount compresses). All three
#                                           rows move the same bytes.
#
# Rows:
#   dd       : `dd bs=1M` of the file into the mount, timed until dd exits (close(2) returned)
#              and until the hub lists the file at full size (staged writes commit after
#              close); the ratios use the latter, the end-to-end time
#   js       : @huggingface/hub uploadFiles of the same bytes (bench/write-upload.mjs)
#   curl     : `curl -T` of the same bytes to nginx's WebDAV PUT, which writes the body to a file
#              on the same disk. hf-local-hub has no plain PUT route (its upload routes take
#              xet xorbs and shards only), so nginx is the "one HTTP stream, bytes persisted"
#              ceiling for moving these bytes over loopback, with no chunking or hashing.
#   close    : close() of a freshly written 1 MiB file, in ms and in hub requests, and the
#              time and requests until its commit (bench/write-close.mjs reads
#              hf-local-hub's debug request log)
#   rewrite  : the same bytes written twice to one path; bytes uploaded by the second write
#              = the sizes of the xorbs POSTed during it (from the hub's request log). The
#              stored-bytes delta is printed too, but it cannot show re-uploads: the hub keeps
#              one copy of a xorb whatever the number of POSTs.
# Every hub is fresh (own data dir) so no measurement dedups against bytes another one stored.
# Needs root (or fusermount3) for FUSE, node with tests/conformance/node_modules, nginx, curl.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/bench/lib.sh"
BIN_DIR="${1:-$ROOT/build-wtest/src/bin}"
SIZE_MIB="${BENCH_SIZE_MIB:-2048}"
REWRITE_MIB="${BENCH_REWRITE_MIB:-1024}"
SAMPLES="${BENCH_CLOSE_SAMPLES:-5}"
STEP_TIMEOUT="${BENCH_TIMEOUT:-900}"
DATA="${BENCH_DATA:-random}"
TOKEN="hf_bench_token_0123456789"
BUCKET="user/wbench"

require_binaries "$BIN_DIR" hf-local-hub hf-mount-fuse
require_tools node nginx curl dd sha256sum
require_hub_client "$ROOT"
(( REWRITE_MIB <= SIZE_MIB )) || { echo "BENCH_REWRITE_MIB must be <= BENCH_SIZE_MIB" >&2; exit 2; }
[[ "$DATA" == random || "$DATA" == mixed ]] || { echo "BENCH_DATA must be random or mixed" >&2; exit 2; }

WORK="$(mktemp -d /tmp/hfm-write-bench.XXXXXX)"
chmod 755 "$WORK"  # nginx workers run as an unprivileged user
HUB_PID=""
HUB_URL=""
HUB_DATA=""
HUB_LOG=""
MOUNT_PID=""
NGINX_PID=""
MP="$WORK/mnt"

unmount() { stop_mount "$MP" "$MOUNT_PID" 300; MOUNT_PID=""; }
cleanup() {
  local rc=$?
  if (( rc != 0 )); then
    echo "--- failed (exit $rc); mount log tail:" >&2
    tail -n 20 "$WORK/mount.log" >&2 2>/dev/null || true
    [[ -n "$HUB_LOG" ]] && { echo "--- hub log tail:" >&2; tail -n 10 "$HUB_LOG" >&2 2>/dev/null || true; }
  fi
  unmount
  stop_local_hub
  stop_pid "$NGINX_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a fresh hf-local-hub on its own data dir ($1 = name); request log at debug level.
start_hub() {
  stop_local_hub
  HUB_DATA="$WORK/hub-$1"
  HUB_LOG="$WORK/hub-$1.log"
  HF_MOUNT_LOG=debug start_local_hub "$BIN_DIR/hf-local-hub" "$HUB_DATA" "$HUB_LOG" --token "user:$TOKEN"
}
create_bucket() {
  curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{}' "$HUB_URL/api/buckets/$BUCKET" > /dev/null
}
mount_fresh() { # $1 = cache dir
  unmount
  mkdir -p "$MP"
  "$BIN_DIR/hf-mount-fuse" --hf-token "$TOKEN" --hub-endpoint "$HUB_URL" --cache-dir "$1" \
    --poll-interval-secs 0 bucket "$BUCKET" "$MP" > "$WORK/mount.log" 2>&1 &
  MOUNT_PID=$!
  wait_mounted "$MP" "$MOUNT_PID" "$WORK/mount.log"
}
# Size of $1 in the bucket according to the hub (paths-info), or "missing".
hub_size() {
  curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"paths\":[\"$1\"]}" "$HUB_URL/api/buckets/$BUCKET/paths-info" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const a=JSON.parse(s);console.log(a.length?a[0].size:"missing")})'
}
# Checks the sha256 of $1 read back through a (fresh) mount against $2. Untimed; the conformance
# test mount_write.test.mjs does the same check with @huggingface/hub's downloads.
verify_through_mount() {
  local sha
  sha=$(timeout "$STEP_TIMEOUT" sha256sum "$MP/$1" | cut -d' ' -f1)
  [[ "$sha" == "$2" ]] || { echo "WRONG BYTES: $1 reads back as $sha, wrote $2" >&2; exit 1; }
}
xorb_bytes() { # stored xorb + shard bytes under the current hub's data dir
  find "$HUB_DATA/cas" \( -name '*.xorb' -o -name '*.shard' \) -type f -printf '%s\n' 2>/dev/null |
    awk '{ s += $1 } END { printf "%.0f\n", s }'
}
request_count() { grep -cE 'http: [A-Z]+ \S+ -> [0-9]+' "$HUB_LOG" || true; }
# The hub log's current line count: where a window of requests starts (the log has other
# lines too, so a request count is not a line number).
log_mark() { wc -l < "$HUB_LOG"; }
# Sum of the stored sizes of the xorbs POSTed in hub log lines after line $1.
posted_xorb_bytes() {
  local total=0 h f
  for h in $(tail -n +"$(( $1 + 1 ))" "$HUB_LOG" | grep -oE 'http: POST /v1/xorbs/[^/ ]+/[0-9a-f]{64} -> 2' |
             grep -oE '[0-9a-f]{64}' | sort -u); do
    f="$HUB_DATA/cas/xorbs/${h:0:2}/$h.xorb"
    [[ -f "$f" ]] && total=$(( total + $(stat -c %s "$f") ))
  done
  echo "$total"
}
# Waits until the hub lists $1 at size $2 (bounded); prints the seconds since $3 (a now()).
wait_committed() {
  local deadline=$(( $(date +%s) + STEP_TIMEOUT ))
  until [[ "$(hub_size "$1")" == "$2" ]]; do
    (( $(date +%s) < deadline )) || { echo "$1 never reached the hub at $2 bytes" >&2; exit 1; }
    sleep 0.1
  done
  elapsed "$3" "$(now)"
}
# Waits until the hub has logged no request for 3 s (the mount's commits have settled).
wait_quiet() {
  local before deadline=$(( $(date +%s) + STEP_TIMEOUT ))
  while (( $(date +%s) < deadline )); do
    before=$(request_count); sleep 3
    [[ "$(request_count)" == "$before" ]] && return 0
  done
}
# dd of $1 to $2 with 1 MiB blocks; its stderr goes to $WORK/dd.err; returns dd's status.
run_dd() { timeout "$STEP_TIMEOUT" dd if="$1" of="$2" bs=1M status=none 2> "$WORK/dd.err"; }
posted_xorb_count() {
  tail -n +"$(( $1 + 1 ))" "$HUB_LOG" | grep -cE 'http: POST /v1/xorbs/' || true
}

# --- data -------------------------------------------------------------------------------
LOCAL="$WORK/local.bin"
echo "generating ${SIZE_MIB} MiB of $DATA data"
gen_data() { # $1 = file, $2 = random|mixed
  timeout "$STEP_TIMEOUT" node -e '
const fs = require("fs"), crypto = require("crypto");
const [file, mib, mode] = process.argv.slice(1);
const fd = fs.openSync(file, "w");
const buf = Buffer.alloc(1 << 20);
for (let i = 0; i < Number(mib); i++) {
  crypto.randomFillSync(buf);
  if (mode === "mixed") for (let o = 4096 - 96; o < buf.length; o += 4096) buf.fill(0, o, o + 96);
  fs.writeSync(fd, buf);
}
fs.closeSync(fd);' "$1" "$SIZE_MIB" "$2"
}
gen_data "$LOCAL" "$DATA"
SIZE=$(stat -c %s "$LOCAL")
SRC_SHA=$(sha256sum "$LOCAL" | cut -d' ' -f1)  # also leaves the file in the page cache
REWRITE="$WORK/rewrite.bin"
head -c "$((REWRITE_MIB * 1024 * 1024))" "$LOCAL" > "$REWRITE"
REWRITE_SIZE=$(stat -c %s "$REWRITE")
REWRITE_SHA=$(sha256sum "$REWRITE" | cut -d' ' -f1)

# --- curl -T to nginx (WebDAV PUT into a file) ------------------------------------------
echo "curl -T to nginx"
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx-root" "$WORK/nginx-tmp"
chmod 777 "$WORK/nginx-root" "$WORK/nginx-tmp"
cat > "$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_max_body_size 0;
  client_body_buffer_size 1m;
  client_body_temp_path $WORK/nginx-tmp;
  proxy_temp_path $WORK/nginx-tmp;
  fastcgi_temp_path $WORK/nginx-tmp;
  uwsgi_temp_path $WORK/nginx-tmp;
  scgi_temp_path $WORK/nginx-tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/nginx-root;
    dav_methods PUT;
    create_full_put_path on;
  }
}
EOF
nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' 2> "$WORK/nginx-start.log" &
NGINX_PID=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx-start.log" >&2; exit 1; }
  sleep 0.1
done
T0=$(now)
cat "$LOCAL" > /dev/null  # page-cached, like the dd source
timeout "$STEP_TIMEOUT" curl -sf -T "$LOCAL" "http://127.0.0.1:$NGINX_PORT/up.bin" -o /dev/null
CURL_S=$(elapsed "$T0" "$(now)")
[[ "$(stat -c %s "$WORK/nginx-root/up.bin")" == "$SIZE" ]] || { echo "nginx stored a short file" >&2; exit 1; }
rm -f "$WORK/nginx-root/up.bin"
stop_pid "$NGINX_PID"; NGINX_PID=""

# --- @huggingface/hub upload ---------------------------------------------------------------
echo "@huggingface/hub upload"
start_hub js
JS_OUT=$(timeout "$STEP_TIMEOUT" node "$ROOT/bench/write-upload.mjs" "$HUB_URL" "$TOKEN" "$BUCKET" "$LOCAL" js.bin)
JS_S=$(node -e 'console.log(JSON.parse(process.argv[1]).seconds.toFixed(3))' "$JS_OUT")
JS_STORED=$(xorb_bytes)
rm -rf "$HUB_DATA"

# --- dd into the mount ---------------------------------------------------------------------
echo "dd into the mount"
cat "$LOCAL" > /dev/null
start_hub dd
create_bucket
mount_fresh "$WORK/cache-dd"
LINES0=$(log_mark)
T0=$(now)
DD_ERR=""
run_dd "$LOCAL" "$MP/dd.bin" || DD_ERR=$(tail -n 1 "$WORK/dd.err")
DD_CLOSE_S=$(elapsed "$T0" "$(now)")
DD_S=$DD_CLOSE_S
if [[ -z "$DD_ERR" ]]; then
  DD_S=$(wait_committed dd.bin "$SIZE" "$T0")
fi
DD_POSTS=$(posted_xorb_count "$LINES0")
DD_STORED=$(xorb_bytes)
if [[ -n "$DD_ERR" ]]; then
  echo "dd FAILED: $DD_ERR" >&2
  grep -m 3 -E "DATA LOSS|error" "$WORK/mount.log" >&2 || true
fi

# --- close latency of 1 MiB files (same hub and mount) --------------------------------------
echo "close latency"
timeout "$STEP_TIMEOUT" node "$ROOT/bench/write-close.mjs" "$MP" "$HUB_LOG" "$SAMPLES" > "$WORK/close.jsonl"
CLOSE_MS=$(node -e 'for (const l of require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n")) console.log(JSON.parse(l).ms)' "$WORK/close.jsonl" | median)
CLOSE_RT=$(node -e 'for (const l of require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n")) console.log(JSON.parse(l).closeRequests)' "$WORK/close.jsonl" | median)
COMMIT_MS=$(node -e 'for (const l of require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n")) console.log(JSON.parse(l).commitMs ?? "nan")' "$WORK/close.jsonl" | median)
COMMIT_RT=$(node -e 'for (const l of require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n")) console.log(JSON.parse(l).commitRequests ?? "nan")' "$WORK/close.jsonl" | median)
FILE_RT=$(node -e 'for (const l of require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n")) console.log(JSON.parse(l).fileRequests)' "$WORK/close.jsonl" | median)
CLOSE_REQS=$(node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n"); console.log(JSON.parse(l[l.length-1]).requests.map(r=>r.replace(/[0-9a-f]{64}/g,"<hash>")).join("; "))' "$WORK/close.jsonl")
for i in $(seq 0 $((SAMPLES - 1))); do
  [[ "$(hub_size "close-$i.bin")" == "1048576" ]] || { echo "close-$i.bin not committed after close" >&2; exit 1; }
done
# Read the big file back through a fresh mount (untimed): the bytes on the hub are right.
if [[ -z "$DD_ERR" ]]; then
  mount_fresh "$WORK/cache-dd-verify"
  verify_through_mount dd.bin "$SRC_SHA"
fi
unmount
rm -rf "$HUB_DATA" "$WORK/cache-dd" "$WORK/cache-dd-verify"

# --- rewrite of an unchanged file ----------------------------------------------------------
echo "rewrite of an unchanged ${REWRITE_MIB} MiB file"
start_hub rewrite
create_bucket
mount_fresh "$WORK/cache-rw"
L0=$(log_mark)
REW_ERR=""
run_dd "$REWRITE" "$MP/rewrite.bin" || REW_ERR="first write: $(tail -n 1 "$WORK/dd.err")"
if [[ -z "$REW_ERR" ]]; then
  wait_committed rewrite.bin "$REWRITE_SIZE" "$(now)" > /dev/null
  wait_quiet
fi
FIRST_UP=$(posted_xorb_bytes "$L0")
S1=$(xorb_bytes)
L1=$(log_mark)
T0=$(now)
if [[ -z "$REW_ERR" ]]; then
  run_dd "$REWRITE" "$MP/rewrite.bin" || REW_ERR="rewrite: $(tail -n 1 "$WORK/dd.err")"
fi
[[ -n "$REW_ERR" ]] || wait_quiet  # the rewrite's commit (if any) is done
REWRITE_S=$(elapsed "$T0" "$(now)")
SECOND_UP=$(posted_xorb_bytes "$L1")
SECOND_POSTS=$(posted_xorb_count "$L1")
S2=$(xorb_bytes)
if [[ -z "$REW_ERR" ]]; then
  [[ "$(hub_size rewrite.bin)" == "$REWRITE_SIZE" ]] || { echo "rewrite.bin has the wrong size on the hub" >&2; exit 1; }
  mount_fresh "$WORK/cache-rw-verify"
  verify_through_mount rewrite.bin "$REWRITE_SHA"
else
  echo "rewrite FAILED: $REW_ERR" >&2
fi
unmount
stop_local_hub

# --- table ---------------------------------------------------------------------------------
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "n/a"; else printf "%.2f", 100 * a / b }'; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo "ok"; else echo "MISSED"; fi; }
if [[ -n "$DD_ERR" ]]; then DD_NOTE="FAILED: $DD_ERR"; else DD_NOTE="$DD_POSTS xorb POSTs, $DD_STORED bytes stored"; fi
DD_JS=$(ratio "$JS_S" "$DD_S")      # throughput ratio = inverse time ratio
DD_CURL=$(ratio "$CURL_S" "$DD_S")
REW_PCT=$(pct "$SECOND_UP" "$REWRITE_SIZE")
echo
echo "hf-mount write bench: $SIZE bytes ($SIZE_MIB MiB) of $DATA data, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-44s %10s %10s %s\n" "case" "s" "MB/s" "notes"
printf "%-44s %10s %10s %s\n" "dd bs=1M into the mount, until close" "$DD_CLOSE_S" "$(mbps "$SIZE" "$DD_CLOSE_S")" ""
printf "%-44s %10s %10s %s\n" "dd bs=1M into the mount, until on the hub" "$DD_S" "$(mbps "$SIZE" "$DD_S")" "$DD_NOTE"
printf "%-44s %10s %10s %s\n" "@huggingface/hub uploadFiles" "$JS_S" "$(mbps "$SIZE" "$JS_S")" "$JS_STORED bytes stored"
printf "%-44s %10s %10s %s\n" "curl -T to nginx WebDAV (same disk)" "$CURL_S" "$(mbps "$SIZE" "$CURL_S")" ""
echo
printf "%-44s %12s %12s %s\n" "metric" "value" "target" "verdict"
printf "%-44s %12s %12s %s\n" "dd throughput / JS client" "${DD_JS}x" ">= 0.8x" "$([[ -n "$DD_ERR" ]] && echo FAILED || verdict "$DD_JS >= 0.8")"
printf "%-44s %12s %12s %s\n" "dd throughput / curl -T" "${DD_CURL}x" "(report)" ""
printf "%-44s %12s %12s %s\n" "close of a 1 MiB file, median ms" "$CLOSE_MS" "" ""
printf "%-44s %12s %12s %s\n" "close of a 1 MiB file, hub requests (median)" "$CLOSE_RT" "<= 3" "$(verdict "$CLOSE_RT <= 3")"
printf "%-44s %12s %12s %s\n" "  whole create+write+close, hub requests" "$FILE_RT" "" ""
printf "%-44s %12s %12s %s\n" "1 MiB file: close -> committed, median ms" "$COMMIT_MS" "" ""
printf "%-44s %12s %12s %s\n" "1 MiB file: close -> committed, requests" "$COMMIT_RT" "<= 3" "$(verdict "$COMMIT_RT <= 3")"
printf "%-44s %12s %12s %s\n" "rewrite unchanged: bytes uploaded" "$SECOND_UP" "" "$SECOND_POSTS xorb POSTs; first write uploaded $FIRST_UP"
printf "%-44s %12s %12s %s\n" "rewrite unchanged: % of the file uploaded" "$REW_PCT" "< 1" "$([[ -n "$REW_ERR" ]] && echo "FAILED: $REW_ERR" || verdict "$REW_PCT < 1")"
printf "%-44s %12s %12s %s\n" "rewrite unchanged: stored-bytes delta" "$((S2 - S1))" "" "rewrite took ${REWRITE_S} s"
echo "requests of the last 1 MiB close (through its commit): $CLOSE_REQS"
