#!/usr/bin/env bash
# Metadata, rclone and memory benchmarks of hf-mount-fuse over hf-local-hub (issue 4's rows
# that run-read-bench.sh does not cover), each against a baseline measured in the same run:
#
#   ls -lR  : a cold mount of a 20 000-file bucket; counts the hub requests it causes (must be
#             per directory listing, never per file) and times it against null_fuse_fs
#   stat    : stat() of every (kernel-cached) entry, hf-mount vs null_fuse_fs with the same
#             entry/attr timeouts (target: >= 0.8x the null filesystem's rate)
#   rclone  : cold sequential read of one file, hf-mount vs `rclone mount` of an HTTP remote
#             (nginx serving a copy of the same bytes) (target: >= 3x rclone)
#   rss     : peak RSS (VmHWM) of hf-mount-fuse while sha256sum reads a large file that was
#             written through a mount with 4 MiB writes (target < 300 MiB)
#
#   bench/run-meta-bench.sh [BUILD_DIR]      (default: build; needs root for FUSE)
#   env: BENCH_DIRS (100) x BENCH_FILES (200)  bucket layout for ls/stat
#        BENCH_RCLONE_MIB (1024)  file size for the rclone row (0 skips it)
#        BENCH_RCLONE_RUNS (3)    alternating cold reads per side; the row shows medians
#        BENCH_RSS_GIB (10)       file size for the RSS row (0 skips it)
#        BENCH_TIMEOUT (900)      seconds allowed for any single step
# Bounded and self-cleaning: every mount, server and temp file is removed on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/bench/lib.sh"
BUILD="${1:-$ROOT/build}"
BIN="$BUILD/src/bin"
NULLFS="$BUILD/bench/null_fuse_fs"
DIRS="${BENCH_DIRS:-100}"
FILES="${BENCH_FILES:-200}"
RCLONE_MIB="${BENCH_RCLONE_MIB:-1024}"
RCLONE_RUNS="${BENCH_RCLONE_RUNS:-3}"
RSS_GIB="${BENCH_RSS_GIB:-10}"
STEP_TIMEOUT="${BENCH_TIMEOUT:-900}"
TOKEN="hf_bench_token_0123456789"
BUCKET="user/meta"
TTL_SECS=10 # hf-mount's default --metadata-ttl-ms, also given to null_fuse_fs

[[ -x "$NULLFS" ]] || { echo "missing $NULLFS (build it: ninja -C $BUILD null_fuse_fs)" >&2; exit 2; }
require_binaries "$BIN" hf-local-hub hf-mount-fuse
require_tools node curl python3 fusermount3 dd sha256sum
require_hub_client "$ROOT"
if [[ "$RCLONE_MIB" != 0 ]]; then
  for tool in rclone nginx; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install $tool, or BENCH_RCLONE_MIB=0)" >&2; exit 2; }
  done
fi

WORK="$(mktemp -d /tmp/hfm-meta-bench.XXXXXX)"
chmod 755 "$WORK" # nginx workers run unprivileged
HUB_PID="" MOUNT_PID="" NULL_PID="" RCLONE_PID="" NGINX_PID=""
MP="$WORK/mnt"
mkdir -p "$MP" "$WORK/data"

# Every filesystem process is stopped; hf-mount gets 30 s to commit what was written.
unmount_all() {
  stop_mount "$MP" "$MOUNT_PID" 300; MOUNT_PID=""
  stop_mount "$MP" "$NULL_PID"; NULL_PID=""
  stop_mount "$MP" "$RCLONE_PID"; RCLONE_PID=""
}
cleanup() {
  unmount_all
  stop_pid "$NGINX_PID"
  stop_local_hub
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_ours() { # $1 = cache dir
  unmount_all
  "$BIN/hf-mount-fuse" --hf-token "$TOKEN" --hub-endpoint "$URL" --cache-dir "$1" \
    --poll-interval-secs 0 --metadata-ttl-ms $((TTL_SECS * 1000)) bucket "$BUCKET" "$MP" \
    > "$WORK/mount.log" 2>&1 &
  MOUNT_PID=$!
  wait_mounted "$MP" "$MOUNT_PID" "$WORK/mount.log"
}
mount_null() {
  unmount_all
  "$NULLFS" "$MP" "$DIRS" "$FILES" "$TTL_SECS" > "$WORK/null.log" 2>&1 &
  NULL_PID=$!
  wait_mounted "$MP" "$NULL_PID" "$WORK/null.log"
}
hub_requests() { grep -c 'http: [A-Z]* ' "$WORK/hub.log" || true; }

# --- hub with a 20 000-file bucket ----------------------------------------------------------
HF_MOUNT_LOG=debug start_local_hub "$BIN/hf-local-hub" "$WORK/data" "$WORK/hub.log" --token "user:$TOKEN"
URL=$HUB_URL

# One small file uploaded by the JS client; the other paths are added by hash through the
# batch API (1000 operations per call, as the Python client), so setup stays fast.
echo "hub at $URL; creating $((DIRS * FILES)) files (${DIRS} dirs x ${FILES})"
SEED_HASH=$(cd "$ROOT/tests/conformance" && timeout "$STEP_TIMEOUT" node --input-type=module -e "
import * as hub from '@huggingface/hub';
const common = { hubUrl: '$URL', accessToken: '$TOKEN' };
const repo = { type: 'bucket', name: '$BUCKET' };
await hub.createRepo({ ...common, repo });
await hub.uploadFiles({ ...common, repo, files: [{ path: 'seed.txt', content: new Blob(['hf-mount meta bench\n']) }] });
for await (const f of hub.listFiles({ ...common, repo })) if (f.path === 'seed.txt') console.log(f.xetHash);
")
[[ "$SEED_HASH" =~ ^[0-9a-f]{64}$ ]] || { echo "no xet hash for the seed file: '$SEED_HASH'" >&2; exit 1; }
python3 - "$DIRS" "$FILES" "$SEED_HASH" "$WORK/batch" <<'EOF'
import json, sys, time
dirs, files, h, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ops = [{"type": "addFile", "path": f"d{d:05d}/f{f:05d}", "xetHash": h, "mtime": int(time.time() * 1000)}
       for d in range(dirs) for f in range(files)]
for i in range(0, len(ops), 1000):
    with open(f"{prefix}.{i // 1000:05d}.ndjson", "w") as out:
        out.write("\n".join(json.dumps(o) for o in ops[i:i + 1000]) + "\n")
EOF
for f in "$WORK"/batch.*.ndjson; do
  curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/x-ndjson" \
    --data-binary "@$f" "$URL/api/buckets/$BUCKET/batch" > /dev/null
done
NFILES=$((DIRS * FILES + 1))

# --- ls -lR: requests and time ----------------------------------------------------------------
count_entries() { timeout "$STEP_TIMEOUT" ls -lR "$MP" | grep -c '^-' || true; }
mount_ours "$WORK/cache-ls"
BEFORE=$(hub_requests)
T0=$(now)
SEEN=$(count_entries)
LS_OURS=$(elapsed "$T0" "$(now)")
LS_REQ=$(( $(hub_requests) - BEFORE ))
[[ "$SEEN" == "$NFILES" ]] || { echo "ls -lR saw $SEEN files, expected $NFILES" >&2; exit 1; }

# The stat list: every file, in a fixed order, stat-ed by one python process (same harness
# for both filesystems). Pass 1 warms the kernel caches; the best of 3 later passes counts.
python3 - "$DIRS" "$FILES" "$WORK/paths" <<'EOF'
import sys
dirs, files = int(sys.argv[1]), int(sys.argv[2])
with open(sys.argv[3], "w") as out:
    for d in range(dirs):
        for f in range(files):
            out.write(f"d{d:05d}/f{f:05d}\n")
EOF
stat_rate() { # prints stat() calls per second over the cached tree
  timeout "$STEP_TIMEOUT" python3 - "$MP" "$WORK/paths" <<'EOF'
import os, sys, time
root = sys.argv[1]
paths = [os.path.join(root, p.strip()) for p in open(sys.argv[2])]
for p in paths:
    os.stat(p)
best = None
for _ in range(3):
    t0 = time.perf_counter()
    for p in paths:
        os.stat(p)
    dt = time.perf_counter() - t0
    best = dt if best is None or dt < best else best
print(f"{len(paths) / best:.0f}")
EOF
}
STAT_OURS=$(stat_rate)
STAT_REQ=$(( $(hub_requests) - BEFORE - LS_REQ ))

mount_null
T0=$(now)
SEEN_NULL=$(count_entries)
LS_NULL=$(elapsed "$T0" "$(now)")
[[ "$SEEN_NULL" == "$((DIRS * FILES))" ]] || { echo "null fs listed $SEEN_NULL files" >&2; exit 1; }
STAT_NULL=$(stat_rate)
unmount_all

# --- rclone cold read -------------------------------------------------------------------------
RCLONE_ROW=""
if [[ "$RCLONE_MIB" != 0 ]]; then
  echo "rclone: ${RCLONE_MIB} MiB file"
  mkdir -p "$WORK/www" "$WORK/nginx-tmp"
  BIG="$WORK/www/big.bin"
  timeout "$STEP_TIMEOUT" head -c "$((RCLONE_MIB * 1024 * 1024))" /dev/urandom > "$BIG"
  BIG_SIZE=$(stat -c %s "$BIG")
  BIG_SHA=$(sha256sum "$BIG" | cut -d' ' -f1)
  (cd "$ROOT/tests/conformance" && timeout "$STEP_TIMEOUT" node --input-type=module -e "
import * as hub from '@huggingface/hub';
import { openAsBlob } from 'node:fs';
await hub.uploadFiles({ hubUrl: '$URL', accessToken: '$TOKEN', repo: { type: 'bucket', name: '$BUCKET' },
  files: [{ path: 'big.bin', content: await openAsBlob('$BIG') }] });
")
  NGINX_PORT=$(free_port)
  cat > "$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $WORK/nginx-tmp;
  proxy_temp_path $WORK/nginx-tmp;
  fastcgi_temp_path $WORK/nginx-tmp;
  uwsgi_temp_path $WORK/nginx-tmp;
  scgi_temp_path $WORK/nginx-tmp;
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; autoindex on; }
}
EOF
  nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' 2> "$WORK/nginx-start.log" &
  NGINX_PID=$!
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; sleep 0.1; done

  # Alternating runs, medians: on a small shared VM one cold read varies by a third.
  OURS_TIMES=()
  RCLONE_TIMES=()
  for run in $(seq 1 "$RCLONE_RUNS"); do
    rm -rf "$WORK/cache-rclone"
    mount_ours "$WORK/cache-rclone"
    drop_caches
    OURS_TIMES+=("$(timed_read "$MP/big.bin" "$BIG_SIZE")")
    [[ "$run" == 1 ]] && check_sha256 "$MP/big.bin" "$BIG_SHA"
    unmount_all
    rclone mount ":http:" "$MP" --http-url "http://127.0.0.1:$NGINX_PORT/" --read-only \
      --vfs-cache-mode off --dir-cache-time 10s --cache-dir "$WORK/rclone-cache" \
      > "$WORK/rclone.log" 2>&1 &
    RCLONE_PID=$!
    wait_mounted "$MP" "$RCLONE_PID" "$WORK/rclone.log"
    drop_caches
    RCLONE_TIMES+=("$(timed_read "$MP/big.bin" "$BIG_SIZE")")
    [[ "$run" == 1 ]] && check_sha256 "$MP/big.bin" "$BIG_SHA"
    unmount_all
    echo "  run $run: hf-mount ${OURS_TIMES[-1]} s, rclone ${RCLONE_TIMES[-1]} s" \
      "($(ratio "${RCLONE_TIMES[-1]}" "${OURS_TIMES[-1]}")x)"
  done
  COLD_OURS=$(printf '%s\n' "${OURS_TIMES[@]}" | median)
  COLD_RCLONE=$(printf '%s\n' "${RCLONE_TIMES[@]}" | median)
  MB=$(awk -v s="$BIG_SIZE" 'BEGIN { printf "%.1f", s / 1e6 }')
  RCLONE_ROW=$(printf "%-40s %12s %12s %8s  %s" "cold read ${MB} MB (MB/s, median of $RCLONE_RUNS)" \
    "$(awk -v m="$MB" -v t="$COLD_OURS" 'BEGIN { printf "%.0f", m / t }')" \
    "$(awk -v m="$MB" -v t="$COLD_RCLONE" 'BEGIN { printf "%.0f", m / t }')" \
    "$(ratio "$COLD_RCLONE" "$COLD_OURS")" ">= 3x rclone")
  rm -f "$BIG"
fi

# --- peak RSS on a large file -----------------------------------------------------------------
RSS_ROW=""
if [[ "$RSS_GIB" != 0 ]]; then
  echo "rss: writing a ${RSS_GIB} GiB file through a mount"
  # Random bytes written with dd through a writable mount (streaming writes commit at close),
  # hashed on the way in: no local copy of the file is kept.
  mount_ours "$WORK/cache-rss-write"
  HUGE_SHA=$(timeout "$((STEP_TIMEOUT * 2))" python3 - "$MP/huge.bin" "$RSS_GIB" <<'EOF'
import hashlib, os, sys
path, gib = sys.argv[1], int(sys.argv[2])
digest = hashlib.sha256()
with open(path, "wb", buffering=0) as out:
    for _ in range(gib * 256):  # 4 MiB writes
        block = os.urandom(4 << 20)
        digest.update(block)
        out.write(block)
print(digest.hexdigest())
EOF
)
  unmount_all
  mount_ours "$WORK/cache-rss"
  drop_caches
  T0=$(now)
  GOT_SHA=$(timeout "$((STEP_TIMEOUT * 2))" sha256sum "$MP/huge.bin" | cut -d' ' -f1)
  RSS_S=$(elapsed "$T0" "$(now)")
  HWM_KB=$(awk '/VmHWM/ { print $2 }' "/proc/$MOUNT_PID/status")
  [[ "$GOT_SHA" == "$HUGE_SHA" ]] || { echo "WRONG BYTES reading huge.bin" >&2; exit 1; }
  unmount_all
  RSS_ROW=$(printf "%-40s %12s %12s %8s  %s" "peak RSS reading ${RSS_GIB} GiB (MiB)" \
    "$((HWM_KB / 1024))" "-" "-" "< 300 MiB (read in ${RSS_S} s)")
fi

# --- table ----------------------------------------------------------------------------------
echo
echo "hf-mount metadata bench: $((DIRS * FILES)) files in $DIRS dirs, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
printf "%-40s %12s %12s %8s  %s\n" "case" "hf-mount" "baseline" "ratio" "target"
printf "%-40s %12s %12s %8s  %s\n" "ls -lR cold mount (s) vs null fs" "$LS_OURS" "$LS_NULL" "$(ratio "$LS_OURS" "$LS_NULL")" "-"
printf "%-40s %12s %12s %8s  %s\n" "hub requests for ls -lR" "$LS_REQ" "$NFILES files" "-" "per dir, not per file (<= $((DIRS + 2)))"
printf "%-40s %12s %12s %8s  %s\n" "stat of cached entries (ops/s)" "$STAT_OURS" "$STAT_NULL" "$(ratio "$STAT_OURS" "$STAT_NULL")" ">= 0.8x null fs"
printf "%-40s %12s %12s %8s  %s\n" "hub requests for 4 stat passes" "$STAT_REQ" "-" "-" "0"
[[ -n "$RCLONE_ROW" ]] && echo "$RCLONE_ROW"
[[ -n "$RSS_ROW" ]] && echo "$RSS_ROW"
echo "(ratio = hf-mount / baseline for rates; for times, lower is better; rclone ratio = speedup)"
