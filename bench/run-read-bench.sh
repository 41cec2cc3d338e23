#!/usr/bin/env bash
# Read-path benchmark: hf-mount-fuse over hf-local-hub against plain HTTP and local disk,
# all measured in the same run on the same bytes.
#
#   bench/run-read-bench.sh [BIN_DIR]     (default BIN_DIR: build/src/bin)
#   env: BENCH_SIZE_MIB (default 1024)  size of the test file
#        BENCH_TTFB_SAMPLES (default 5)  samples for the 4 KiB time-to-first-byte medians
#        BENCH_HOT_SAMPLES (default 3)   samples for the hot re-read medians
#        BENCH_TIMEOUT (default 900)     seconds allowed for any single step
#
# Rows (one run each unless noted):
#   cold   : sequential read through a fresh mount with an empty chunk cache
#            vs one curl stream of the same bytes from the hub's resolve URL
#   warm   : fresh mount (empty page cache) over the filled chunk cache, caches dropped
#            vs reading a local copy of the file after dropping caches
#   hot    : re-reads through the same mount (kernel page cache), each a new open, vs local
#            hot re-reads; medians, taken after `sync` so the chunk cache's writeback from
#            the cold read is not timed
#   ttfb   : a 4 KiB pread at a new offset through a fresh mount vs a curl range request
#   file   : --cache-mode file on a read-only mount: once the first read's background download
#            made the whole-file copy, hot re-reads (new opens; FUSE passthrough where the kernel
#            offers it) vs local hot, and a read with caches dropped vs local cold
# Needs root for FUSE; drop_caches is used when writable (otherwise noted in the table).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/bench/lib.sh"
BIN_DIR="${1:-$ROOT/build/src/bin}"
SIZE_MIB="${BENCH_SIZE_MIB:-1024}"
SAMPLES="${BENCH_TTFB_SAMPLES:-5}"
HOT_SAMPLES="${BENCH_HOT_SAMPLES:-3}"
STEP_TIMEOUT="${BENCH_TIMEOUT:-900}"
TOKEN="hf_bench_token_0123456789"
BUCKET="user/bench"
FILE="bench.bin"

require_binaries "$BIN_DIR" hf-local-hub hf-mount-fuse
require_tools node curl dd sha256sum
require_hub_client "$ROOT"

WORK="$(mktemp -d /tmp/hfm-read-bench.XXXXXX)"
HUB_PID=""
MOUNT_PID=""
MP="$WORK/mnt"

unmount() { stop_mount "$MP" "$MOUNT_PID" 100; MOUNT_PID=""; }
cleanup() {
  unmount
  stop_local_hub
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- data -------------------------------------------------------------------------------
mkdir -p "$WORK/data" "$MP"
LOCAL="$WORK/local.bin"
echo "generating ${SIZE_MIB} MiB of random data"
timeout "$STEP_TIMEOUT" head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$LOCAL"
SIZE=$(stat -c %s "$LOCAL")
SIZE_MB=$(awk -v s="$SIZE" 'BEGIN { printf "%.3f", s / 1e6 }')
SRC_SHA=$(sha256sum "$LOCAL" | cut -d' ' -f1)

start_local_hub "$BIN_DIR/hf-local-hub" "$WORK/data" "$WORK/hub.log" --token "user:$TOKEN"
URL=$HUB_URL
echo "hub at $URL; uploading with @huggingface/hub (xet)"
T0=$(now)
js_upload_bucket "$ROOT" "$URL" "$TOKEN" "$BUCKET" "$FILE" "$LOCAL"
UPLOAD_S=$(elapsed "$T0" "$(now)")
RESOLVE="$URL/buckets/$BUCKET/resolve/$FILE"

mount_fresh() { # $1 = cache dir, then extra mount options
  unmount
  "$BIN_DIR/hf-mount-fuse" --hf-token "$TOKEN" --hub-endpoint "$URL" --cache-dir "$1" \
    --poll-interval-secs 0 "${@:2}" bucket "$BUCKET" "$MP" > "$WORK/mount.log" 2>&1 &
  MOUNT_PID=$!
  wait_mounted "$MP" "$MOUNT_PID" "$WORK/mount.log"
}
verify() { check_sha256 "$1" "$SRC_SHA"; }
hot_median() { # $1 = file already in the page cache; median of HOT_SAMPLES re-reads
  sync
  local t
  for _ in $(seq 1 "$HOT_SAMPLES"); do
    t=$(timed_read "$1" "$SIZE")
    echo "$t"
  done | median
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
COLD_S=$(timed_read "$MP/$FILE" "$SIZE")
HOT_S=$(hot_median "$MP/$FILE")
verify "$MP/$FILE" # the pages the cold read filled

# --- warm (chunk cache, fresh mount so the kernel page cache is empty) ------------------
echo "warm reads"
mount_fresh "$WORK/cache1"
drop_caches
WARM_S=$(timed_read "$MP/$FILE" "$SIZE")
verify "$MP/$FILE"
drop_caches
LOCAL_COLD_S=$(timed_read "$LOCAL" "$SIZE")
LOCAL_HOT_S=$(hot_median "$LOCAL")
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

# --- whole-file cache (--cache-mode file, read-only mount) --------------------------------
echo "file cache reads"
mount_fresh "$WORK/cache3" --cache-mode file --read-only
drop_caches
FILE_FIRST_S=$(timed_read "$MP/$FILE" "$SIZE")
copy_ready() { find "$WORK/cache3/files" -path '*/.tmp' -prune -o -type f -size "${SIZE}c" -print | grep -q .; }
for _ in $(seq 1 $((STEP_TIMEOUT * 10))); do copy_ready && break; sleep 0.1; done
copy_ready || { echo "the whole-file copy was never made" >&2; cat "$WORK/mount.log" >&2; exit 1; }
FILE_HOT_S=$(hot_median "$MP/$FILE")
verify "$MP/$FILE"
drop_caches
FILE_WARM_S=$(timed_read "$MP/$FILE" "$SIZE")
PASSTHROUGH=$(grep -q "FUSE passthrough on" "$WORK/mount.log" && echo on || echo off)
unmount

# --- table -------------------------------------------------------------------------------
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }
echo
echo "hf-mount read bench: ${SIZE_MB} MB file, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), drop_caches=$DROP"
echo "upload with @huggingface/hub: ${UPLOAD_S} s"
printf "%-34s %12s %12s %12s %12s %8s\n" "case" "mount s" "mount MB/s" "ref s" "ref MB/s" "ratio"
row() { printf "%-34s %12s %12s %12s %12s %8s\n" "$1" "$2" "$(mbps "$SIZE" "$2")" "$3" "$(mbps "$SIZE" "$3")" "$(ratio "$2" "$3")"; }
row "cold seq read vs curl stream" "$COLD_S" "$CURL_S"
row "warm (chunk cache) vs local cold" "$WARM_S" "$LOCAL_COLD_S"
row "hot re-read vs local hot (median)" "$HOT_S" "$LOCAL_HOT_S"
row "file cache: first read vs curl" "$FILE_FIRST_S" "$CURL_S"
row "file cache: hot re-read vs local" "$FILE_HOT_S" "$LOCAL_HOT_S"
row "file cache: warm vs local cold" "$FILE_WARM_S" "$LOCAL_COLD_S"
printf "%-34s %12s %12s %12s %12s %8s\n" "4 KiB TTFB (median of $SAMPLES, ms)" "$(ms "$TTFB_M")" "" "$(ms "$TTFB_C")" "" "$(ratio "$TTFB_M" "$TTFB_C")"
echo "(ratio = mount time / reference time; lower is better. chunk cache after the cold read: $CACHE_BYTES bytes)"
echo "(file cache rows: --cache-mode file --read-only, FUSE passthrough $PASSTHROUGH)"
