#!/usr/bin/env bash
# Read-path benchmark: hf-mount-fuse over hf-local-hub against plain HTTP and local disk,
# all measured in the same run on the same bytes.
#
#   bench/run-read-bench.sh [BIN_DIR]     (default BIN_DIR: build-cache/src/bin)
#   env: BENCH_SIZE_MIB (default 1024)  size of the test file
#        BENCH_TTFB_SAMPLES (default 5)  samples for the 4 KiB time-to-first-byte medians
#        BENCH_TIMEOUT (default 900)     seconds allowed for any single step
#
# Rows (median of one run each unless noted):
#   cold   : sequential read through a fresh mount with an empty chunk cache
#            vs one curl stream of the same bytes from the hub's resolve URL
#   warm   : fresh mount (empty page cache) over the filled chunk cache, caches dropped
#            vs reading a local copy of the file after dropping caches
#   hot    : re-read through the same mount (kernel page cache) vs local hot re-read
#   ttfb   : a 4 KiB pread at a new offset through a fresh mount vs a curl range request
# Needs root for FUSE; drop_caches is used when writable (otherwise noted in the table).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${1:-$ROOT/build-cache/src/bin}"
SIZE_MIB="${BENCH_SIZE_MIB:-1024}"
SAMPLES="${BENCH_TTFB_SAMPLES:-5}"
STEP_TIMEOUT="${BENCH_TIMEOUT:-900}"
TOKEN="hf_bench_token_0123456789"
BUCKET="user/bench"
FILE="bench.bin"

for b in hf-local-hub hf-mount-fuse; do
  [[ -x "$BIN_DIR/$b" ]] || { echo "missing $BIN_DIR/$b" >&2; exit 2; }
done
[[ -d "$ROOT/tests/conformance/node_modules/@huggingface/hub" ]] || {
  echo "missing tests/conformance/node_modules (npm ci there first)" >&2; exit 2; }

WORK="$(mktemp -d /tmp/hfm-read-bench.XXXXXX)"
HUB_PID=""
MOUNT_PID=""
MP="$WORK/mnt"

unmount() {
  if [[ -n "$MOUNT_PID" ]] && kill -0 "$MOUNT_PID" 2>/dev/null; then
    kill -TERM "$MOUNT_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$MOUNT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$MOUNT_PID" 2>/dev/null || true
    wait "$MOUNT_PID" 2>/dev/null || true
  fi
  MOUNT_PID=""
  if grep -q " $MP " /proc/mounts 2>/dev/null; then
    fusermount3 -u -z "$MP" 2>/dev/null || umount -l "$MP" 2>/dev/null || true
  fi
}
cleanup() {
  unmount
  if [[ -n "$HUB_PID" ]]; then
    kill -TERM "$HUB_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mbps() { awk -v s="$1" -v t="$2" 'BEGIN { if (t <= 0) print "inf"; else printf "%.1f", s / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "n/a"; else printf "%.2f", a / b }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

DROP="no"
drop_caches() {
  sync
  if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then DROP="yes"; else DROP="no"; fi
}

# --- data -------------------------------------------------------------------------------
mkdir -p "$WORK/data" "$MP"
LOCAL="$WORK/local.bin"
echo "generating ${SIZE_MIB} MiB of random data"
timeout "$STEP_TIMEOUT" head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$LOCAL"
SIZE=$(stat -c %s "$LOCAL")
SIZE_MB=$(awk -v s="$SIZE" 'BEGIN { printf "%.3f", s / 1e6 }')
SRC_SHA=$(sha256sum "$LOCAL" | cut -d' ' -f1)

"$BIN_DIR/hf-local-hub" serve --data "$WORK/data" --port 0 --token "user:$TOKEN" > "$WORK/hub.log" 2>&1 &
HUB_PID=$!
URL=""
for _ in $(seq 1 200); do
  URL=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$WORK/hub.log" | head -1 || true)
  [[ -n "$URL" ]] && break
  kill -0 "$HUB_PID" 2>/dev/null || { cat "$WORK/hub.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$URL" ]] || { echo "hub did not start" >&2; exit 1; }
echo "hub at $URL; uploading with @huggingface/hub (xet)"
T0=$(now)
(cd "$ROOT/tests/conformance" && timeout "$STEP_TIMEOUT" node --input-type=module -e "
import * as hub from '@huggingface/hub';
import { openAsBlob } from 'node:fs';
const common = { hubUrl: '$URL', accessToken: '$TOKEN' };
const repo = { type: 'bucket', name: '$BUCKET' };
await hub.createRepo({ ...common, repo });
await hub.uploadFiles({ ...common, repo, files: [{ path: '$FILE', content: await openAsBlob('$LOCAL') }] });
")
UPLOAD_S=$(elapsed "$T0" "$(now)")
RESOLVE="$URL/buckets/$BUCKET/resolve/$FILE"

mount_fresh() { # $1 = cache dir
  unmount
  "$BIN_DIR/hf-mount-fuse" --hf-token "$TOKEN" --hub-endpoint "$URL" --cache-dir "$1" \
    --poll-interval-secs 0 bucket "$BUCKET" "$MP" > "$WORK/mount.log" 2>&1 &
  MOUNT_PID=$!
  for _ in $(seq 1 600); do
    if grep -q " $MP " /proc/mounts && ls "$MP" > /dev/null 2>&1; then return 0; fi
    kill -0 "$MOUNT_PID" 2>/dev/null || { cat "$WORK/mount.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "mount did not come up" >&2; cat "$WORK/mount.log" >&2; exit 1
}

timed_read() { # $1 = file; prints seconds (bytes go to /dev/null; content is checked apart)
  local t0 t1 n
  t0=$(now)
  n=$(timeout "$STEP_TIMEOUT" dd if="$1" of=/dev/null bs=4M 2>&1 | awk '/bytes/ { print $1 }')
  t1=$(now)
  [[ "$n" == "$SIZE" ]] || { echo "short read of $1: $n of $SIZE bytes" >&2; exit 1; }
  elapsed "$t0" "$t1"
}
verify() { # $1 = file; untimed sha256 check against the source
  local sha
  sha=$(timeout "$STEP_TIMEOUT" sha256sum "$1" | cut -d' ' -f1)
  [[ "$sha" == "$SRC_SHA" ]] || { echo "WRONG BYTES reading $1" >&2; exit 1; }
}
timed_curl() { # one stream of the whole file; prints seconds
  local t0 t1 n
  t0=$(now)
  n=$(timeout "$STEP_TIMEOUT" curl -sfL -H "Authorization: Bearer $TOKEN" -o /dev/null -w '%{size_download}' "$RESOLVE")
  t1=$(now)
  [[ "$n" == "$SIZE" ]] || { echo "curl got $n of $SIZE bytes" >&2; exit 1; }
  elapsed "$t0" "$t1"
}

# --- cold ------------------------------------------------------------------------------
echo "cold reads"
drop_caches
CURL_S=$(timed_curl)
mount_fresh "$WORK/cache1"
drop_caches
COLD_S=$(timed_read "$MP/$FILE")
HOT_S=$(timed_read "$MP/$FILE")
verify "$MP/$FILE" # the pages the cold read filled

# --- warm (chunk cache, fresh mount so the kernel page cache is empty) ------------------
echo "warm reads"
mount_fresh "$WORK/cache1"
drop_caches
WARM_S=$(timed_read "$MP/$FILE")
verify "$MP/$FILE"
drop_caches
LOCAL_COLD_S=$(timed_read "$LOCAL")
LOCAL_HOT_S=$(timed_read "$LOCAL")
CACHE_BYTES=$(du -sb "$WORK/cache1" | cut -f1)

# --- time to first byte of a 4 KiB read ---------------------------------------------------
echo "time to first byte"
mount_fresh "$WORK/cache2"
: > "$WORK/ttfb_mount"; : > "$WORK/ttfb_curl"
for i in $(seq 1 "$SAMPLES"); do
  # A fresh offset per sample (never read before through this mount), spread over the file.
  OFF=$(( (SIZE / (SAMPLES + 1)) * i / 4096 * 4096 + 4096 * i ))
  t0=$(now)
  timeout 120 dd if="$MP/$FILE" bs=4096 count=1 skip="$OFF" iflag=skip_bytes status=none > "$WORK/m.4k"
  t1=$(now)
  elapsed "$t0" "$t1" >> "$WORK/ttfb_mount"
  t0=$(now)
  timeout 120 curl -sfL -H "Authorization: Bearer $TOKEN" -r "$OFF-$((OFF + 4095))" "$RESOLVE" -o "$WORK/c.4k"
  t1=$(now)
  elapsed "$t0" "$t1" >> "$WORK/ttfb_curl"
  dd if="$LOCAL" bs=4096 count=1 skip="$OFF" iflag=skip_bytes status=none > "$WORK/l.4k"
  cmp -s "$WORK/m.4k" "$WORK/l.4k" || { echo "WRONG BYTES in mount 4 KiB read at $OFF" >&2; exit 1; }
  cmp -s "$WORK/c.4k" "$WORK/l.4k" || { echo "WRONG BYTES in curl range at $OFF" >&2; exit 1; }
done
TTFB_M=$(median < "$WORK/ttfb_mount")
TTFB_C=$(median < "$WORK/ttfb_curl")
unmount

# --- table -------------------------------------------------------------------------------
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }
echo
echo "hf-mount read bench: ${SIZE_MB} MB file, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), drop_caches=$DROP"
echo "upload with @huggingface/hub: ${UPLOAD_S} s"
printf "%-34s %12s %12s %12s %12s %8s\n" "case" "mount s" "mount MB/s" "ref s" "ref MB/s" "ratio"
row() { printf "%-34s %12s %12s %12s %12s %8s\n" "$1" "$2" "$(mbps "$SIZE_MB" "$2")" "$3" "$(mbps "$SIZE_MB" "$3")" "$(ratio "$2" "$3")"; }
row "cold seq read vs curl stream" "$COLD_S" "$CURL_S"
row "warm (chunk cache) vs local cold" "$WARM_S" "$LOCAL_COLD_S"
row "hot re-read vs local hot" "$HOT_S" "$LOCAL_HOT_S"
printf "%-34s %12s %12s %12s %12s %8s\n" "4 KiB TTFB (median of $SAMPLES, ms)" "$(ms "$TTFB_M")" "" "$(ms "$TTFB_C")" "" "$(ratio "$TTFB_M" "$TTFB_C")"
echo "(ratio = mount time / reference time; lower is better. chunk cache after the cold read: $CACHE_BYTES bytes)"
