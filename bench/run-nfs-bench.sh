#!/usr/bin/env bash
# NFS backend benchmark: hf-mount-nfs (served with --no-mount, read by libnfs's nfs-cat and
# nfs-ls as the client) against hf-mount-fuse (kernel FUSE mount, dd and ls -R), both over the
# same hf-local-hub, measured in the same run on the same bytes.
#
#   bench/run-nfs-bench.sh [BIN_DIR]     (default BIN_DIR: build-nfs/src/bin)
#   env: BENCH_SIZE_MIB (default 1024)   size of the sequential-read file
#        BENCH_FILES (default 20000)     files in the listing bucket (BENCH_PER_DIR per dir)
#        BENCH_PER_DIR (default 1000)
#        BENCH_TIMEOUT (default 900)     seconds allowed for any single step
#
# Rows:
#   warm seq read : the whole file from a fresh backend process whose chunk cache was filled
#                   by an earlier (untimed, verified) read; page cache dropped before each
#                   timed read. NFS: nfs-cat > /dev/null. FUSE: dd bs=4M > /dev/null.
#                   Target: NFS throughput >= 0.7x FUSE.
#   listing       : the whole tree from a fresh backend process (first listing of every
#                   directory comes from the hub). NFS: nfs-ls -R. FUSE: ls -R.
#                   Target: NFS time <= 2x FUSE.
# Needs root and /dev/fuse for the FUSE side, nfs-cat/nfs-ls (Debian libnfs-utils), curl, and
# node with tests/conformance/node_modules (the upload uses @huggingface/hub, as users do).
# Everything runs on 127.0.0.1 and is removed on exit, also on failure or Ctrl-C.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/bench/lib.sh"
BIN_DIR="${1:-$ROOT/build-nfs/src/bin}"
SIZE_MIB="${BENCH_SIZE_MIB:-1024}"
FILES="${BENCH_FILES:-20000}"
PER_DIR="${BENCH_PER_DIR:-1000}"
STEP_TIMEOUT="${BENCH_TIMEOUT:-900}"
TOKEN="hf_nfs_bench_token_0123456789"
BIG_BUCKET="user/nfsbench"
MANY_BUCKET="user/nfsmany"
FILE="bench.bin"

require_binaries "$BIN_DIR" hf-local-hub hf-mount-fuse hf-mount-nfs
require_tools nfs-cat nfs-ls curl node
require_hub_client "$ROOT"
[[ $(id -u) == 0 && -w /dev/fuse ]] || { echo "the FUSE side needs root and /dev/fuse" >&2; exit 2; }

WORK="$(mktemp -d /tmp/hfm-nfs-bench.XXXXXX)"
HUB_PID=""
FUSE_PID=""
NFS_PID=""
MP="$WORK/mnt"

unmount_fuse() { stop_mount "$MP" "$FUSE_PID" 150; FUSE_PID=""; }
stop_nfs() { stop_pid "$NFS_PID" 150; NFS_PID=""; }
cleanup() {
  stop_nfs
  unmount_fuse
  stop_local_hub
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- data and hub ---------------------------------------------------------------------------
mkdir -p "$WORK/data" "$MP"
LOCAL="$WORK/local.bin"
echo "generating ${SIZE_MIB} MiB of random data"
timeout "$STEP_TIMEOUT" head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$LOCAL"
SIZE=$(stat -c %s "$LOCAL")
SIZE_MB=$(awk -v s="$SIZE" 'BEGIN { printf "%.3f", s / 1e6 }')
SRC_SHA=$(sha256sum "$LOCAL" | cut -d' ' -f1)

start_local_hub "$BIN_DIR/hf-local-hub" "$WORK/data" "$WORK/hub.log" --token "user:$TOKEN"
URL=$HUB_URL

echo "hub at $URL; uploading ${SIZE_MIB} MiB with @huggingface/hub (xet)"
js_upload_bucket "$ROOT" "$URL" "$TOKEN" "$BIG_BUCKET" "$FILE" "$LOCAL"

echo "committing $FILES empty files to $MANY_BUCKET ($PER_DIR per directory)"
curl -sf -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{}' "$URL/api/buckets/$MANY_BUCKET"
awk -v n="$FILES" -v per="$PER_DIR" -v zero="$(printf '0%.0s' $(seq 1 64))" 'BEGIN {
  for (i = 0; i < n; i++)
    printf "{\"type\":\"addFile\",\"path\":\"d%d/f%d.txt\",\"xetHash\":\"%s\"}\n", int(i / per), i, zero
}' > "$WORK/many.ndjson"
timeout "$STEP_TIMEOUT" curl -sf -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/x-ndjson' --data-binary "@$WORK/many.ndjson" \
  "$URL/api/buckets/$MANY_BUCKET/batch"
DIRS=$(( (FILES + PER_DIR - 1) / PER_DIR ))

# --- backends --------------------------------------------------------------------------------
NFS_PORT=""
start_nfs() { # $1 = bucket, $2 = cache dir
  stop_nfs
  "$BIN_DIR/hf-mount-nfs" --hf-token "$TOKEN" --hub-endpoint "$URL" --cache-dir "$2" \
    --poll-interval-secs 0 --no-mount bucket "$1" "$MP" > "$WORK/nfs.out" 2> "$WORK/nfs.log" &
  NFS_PID=$!
  NFS_PORT=""
  for _ in $(seq 1 600); do
    NFS_PORT=$(sed -n 's/^NFS server listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/nfs.out" | head -1)
    [[ -n "$NFS_PORT" ]] && return 0
    kill -0 "$NFS_PID" 2>/dev/null || { cat "$WORK/nfs.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "hf-mount-nfs did not come up" >&2; cat "$WORK/nfs.log" >&2; exit 1
}
nfs_url() { echo "nfs://127.0.0.1$1?nfsport=$NFS_PORT&mountport=$NFS_PORT&version=3"; }

mount_fuse() { # $1 = bucket, $2 = cache dir
  unmount_fuse
  "$BIN_DIR/hf-mount-fuse" --hf-token "$TOKEN" --hub-endpoint "$URL" --cache-dir "$2" \
    --poll-interval-secs 0 bucket "$1" "$MP" > "$WORK/fuse.log" 2>&1 &
  FUSE_PID=$!
  wait_mounted "$MP" "$FUSE_PID" "$WORK/fuse.log"
}

check_sha() { # $1 = what, stdin = bytes
  local sha
  sha=$(sha256sum | cut -d' ' -f1)
  [[ "$sha" == "$SRC_SHA" ]] || { echo "WRONG BYTES reading $1" >&2; exit 1; }
}
timed() { # $@ = command (stdout to /dev/null); prints seconds
  local t0 t1
  t0=$(now)
  timeout "$STEP_TIMEOUT" "$@" > /dev/null
  t1=$(now)
  elapsed "$t0" "$t1"
}

# --- sequential read from a warm chunk cache --------------------------------------------------
echo "NFS: filling the chunk cache (verified read)"
start_nfs "$BIG_BUCKET" "$WORK/cache-nfs"
timeout "$STEP_TIMEOUT" nfs-cat "$(nfs_url "//$FILE")" | check_sha "nfs-cat (cold)"
start_nfs "$BIG_BUCKET" "$WORK/cache-nfs"  # fresh process over the filled cache
drop_caches
echo "NFS: warm read"
NFS_READ_S=$(timed nfs-cat "$(nfs_url "//$FILE")")
timeout "$STEP_TIMEOUT" nfs-cat "$(nfs_url "//$FILE")" | check_sha "nfs-cat (warm)"
stop_nfs

echo "FUSE: filling the chunk cache (verified read)"
mount_fuse "$BIG_BUCKET" "$WORK/cache-fuse"
timeout "$STEP_TIMEOUT" cat "$MP/$FILE" | check_sha "FUSE (cold)"
mount_fuse "$BIG_BUCKET" "$WORK/cache-fuse"
drop_caches
echo "FUSE: warm read"
FUSE_READ_S=$(timed dd if="$MP/$FILE" of=/dev/stdout bs=4M status=none)
drop_caches
timeout "$STEP_TIMEOUT" cat "$MP/$FILE" | check_sha "FUSE (warm)"
unmount_fuse

# --- listing of the many-file bucket -------------------------------------------------------------
echo "NFS: nfs-ls -R of $FILES files"
start_nfs "$MANY_BUCKET" "$WORK/cache-nfs-many"
t0=$(now)
timeout "$STEP_TIMEOUT" nfs-ls -R "$(nfs_url "/")" > "$WORK/nfs-ls.txt"
NFS_LS_S=$(elapsed "$t0" "$(now)")
NFS_LS_FILES=$(grep -c '/f[0-9]*\.txt$' "$WORK/nfs-ls.txt" || true)
[[ "$NFS_LS_FILES" == "$FILES" ]] || { echo "nfs-ls -R listed $NFS_LS_FILES of $FILES files" >&2; exit 1; }
stop_nfs

echo "FUSE: ls -R of $FILES files"
mount_fuse "$MANY_BUCKET" "$WORK/cache-fuse-many"
t0=$(now)
timeout "$STEP_TIMEOUT" ls -R "$MP" > "$WORK/fuse-ls.txt"
FUSE_LS_S=$(elapsed "$t0" "$(now)")
FUSE_LS_FILES=$(grep -c '^f[0-9]*\.txt$' "$WORK/fuse-ls.txt" || true)
[[ "$FUSE_LS_FILES" == "$FILES" ]] || { echo "ls -R listed $FUSE_LS_FILES of $FILES files" >&2; exit 1; }
unmount_fuse

# --- table -----------------------------------------------------------------------------------------
echo
echo "hf-mount NFS bench: ${SIZE_MB} MB file, $FILES files in $DIRS dirs, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), drop_caches=$DROP"
printf "%-32s %10s %12s %10s %12s %8s %8s\n" "case" "NFS s" "NFS MB/s" "FUSE s" "FUSE MB/s" "ratio" "target"
printf "%-32s %10s %12s %10s %12s %8s %8s\n" "warm seq read (throughput)" "$NFS_READ_S" \
  "$(mbps "$SIZE" "$NFS_READ_S")" "$FUSE_READ_S" "$(mbps "$SIZE" "$FUSE_READ_S")" \
  "$(ratio "$FUSE_READ_S" "$NFS_READ_S")" ">=0.70"
printf "%-32s %10s %12s %10s %12s %8s %8s\n" "listing -R (time)" "$NFS_LS_S" "" "$FUSE_LS_S" "" \
  "$(ratio "$NFS_LS_S" "$FUSE_LS_S")" "<=2.00"
echo "(read ratio = NFS throughput / FUSE throughput; listing ratio = NFS time / FUSE time)"
