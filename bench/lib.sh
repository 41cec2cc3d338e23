# Helpers shared by the bench/run-*.sh scripts. Source it, don't run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Every wait here is bounded and every process it starts can be stopped with stop_pid, so a
# script's EXIT trap can always clean up.

# --- arithmetic and timing -------------------------------------------------------------------
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }  # $1 = start, $2 = end
# Decimal MB/s of $1 bytes moved in $2 seconds.
mbps() { awk -v s="$1" -v t="$2" 'BEGIN { if (t <= 0) print "inf"; else printf "%.1f", s / 1e6 / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "n/a"; else printf "%.2f", a / b }'; }
# Median of the numbers on stdin, one a line ("nan" when there are none).
median() {
  sort -g | awk '{ v[NR] = $1 }
    END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2];
          else printf "%g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Reads $1 sequentially with dd (4 MiB blocks) to /dev/null and prints the seconds it took;
# exits 1 unless exactly $2 bytes came back. Bounded by STEP_TIMEOUT (default 900 s).
timed_read() {
  local t0 t1 n
  t0=$(now)
  n=$(timeout "${STEP_TIMEOUT:-900}" dd if="$1" of=/dev/null bs=4M 2>&1 | awk '/bytes/ { print $1 }')
  t1=$(now)
  [[ "$n" == "$2" ]] || { echo "short read of $1: $n of $2 bytes" >&2; exit 1; }
  elapsed "$t0" "$t1"
}
# Untimed check that $1 reads back with sha256 $2 (exits 1 naming the file otherwise).
check_sha256() {
  local sha
  sha=$(timeout "${STEP_TIMEOUT:-900}" sha256sum "$1" | cut -d' ' -f1)
  [[ "$sha" == "$2" ]] || { echo "WRONG BYTES reading $1" >&2; exit 1; }
}

# --- preconditions -------------------------------------------------------------------------
require_tools() { # $@ = commands that must be on PATH; exits 2 naming the first missing one
  local tool
  for tool in "$@"; do
    command -v "$tool" > /dev/null || { echo "missing tool: $tool" >&2; exit 2; }
  done
}
require_binaries() { # $1 = directory, then binary names that must be executable in it
  local dir=$1 b
  shift
  for b in "$@"; do
    [[ -x "$dir/$b" ]] || { echo "missing $dir/$b (build it first)" >&2; exit 2; }
  done
}
require_hub_client() { # $1 = repository root: @huggingface/hub installed for the node helpers
  [[ -d "$1/tests/conformance/node_modules/@huggingface/hub" ]] || {
    echo "missing tests/conformance/node_modules (npm ci there first)" >&2; exit 2; }
}

# --- processes -----------------------------------------------------------------------------
# SIGTERM, wait up to $2 tenths of a second (default 100), then SIGKILL; reaps the process.
# A mount given more time flushes its pending uploads before exiting.
stop_pid() {
  [[ -n "${1:-}" ]] || return 0
  local tenths=${2:-100}
  kill -0 "$1" 2> /dev/null || { wait "$1" 2> /dev/null || true; return 0; }
  kill -TERM "$1" 2> /dev/null || true
  for _ in $(seq 1 "$tenths"); do kill -0 "$1" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2> /dev/null || true
  wait "$1" 2> /dev/null || true
}

# A free TCP port on 127.0.0.1 (for servers that cannot pick their own, e.g. nginx).
free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Starts hf-local-hub in the background on a free loopback port and waits (≤ 20 s) for its
# "listening" line. Sets HUB_PID and HUB_URL; exits 1 with the log if it dies or stays silent.
#   start_local_hub BIN DATA_DIR LOG [extra serve args, e.g. --token user:hf_x]
# Prefix HF_MOUNT_LOG=debug to log every request (the write and meta benches count them).
start_local_hub() {
  local bin=$1 data=$2 log=$3
  shift 3
  mkdir -p "$data"
  "$bin" serve --data "$data" --host 127.0.0.1 --port 0 "$@" > "$log" 2>&1 &
  HUB_PID=$!
  HUB_URL=""
  for _ in $(seq 1 200); do
    HUB_URL=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$log" | head -1 || true)
    [[ -n "$HUB_URL" ]] && return 0
    kill -0 "$HUB_PID" 2> /dev/null || { echo "hf-local-hub exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "hf-local-hub did not start" >&2
  cat "$log" >&2
  exit 1
}
stop_local_hub() { stop_pid "${HUB_PID:-}"; HUB_PID=""; }

# --- mounts --------------------------------------------------------------------------------
# Waits (≤ 60 s) until $1 is a mount point that answers ls; $2 = pid of the filesystem
# process, $3 = its log (printed, then exit 1, if it dies or the mount never comes up).
wait_mounted() {
  local mp=$1 pid=$2 log=$3
  for _ in $(seq 1 600); do
    if grep -q " $mp " /proc/mounts && ls "$mp" > /dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2> /dev/null || { echo "mount process exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "mount at $mp did not come up" >&2
  cat "$log" >&2
  exit 1
}
# Stops the filesystem process $2 (SIGTERM; $3 tenths of a second to finish, default 300) and
# lazily detaches $1 if the kernel still lists it (a killed process leaves it behind).
stop_mount() {
  local mp=$1 pid=${2:-} tenths=${3:-300}
  stop_pid "$pid" "$tenths"
  if grep -q " $mp " /proc/mounts 2> /dev/null; then
    fusermount3 -u -z "$mp" 2> /dev/null || umount -l "$mp" 2> /dev/null || true
  fi
}

# Page cache dropped (needs root); sets DROP=yes|no so the table can say whether it was.
# shellcheck disable=SC2034  # read by the sourcing scripts
DROP="no"
drop_caches() {
  sync
  if echo 3 > /proc/sys/vm/drop_caches 2> /dev/null; then DROP="yes"; else DROP="no"; fi
}

# --- hub content ---------------------------------------------------------------------------
# Creates bucket $4 and uploads local file $6 as $5 with @huggingface/hub (xet), as users do.
#   js_upload_bucket ROOT HUB_URL TOKEN BUCKET PATH_IN_BUCKET LOCAL_FILE
# Bounded by STEP_TIMEOUT (default 900 s).
js_upload_bucket() {
  local root=$1 url=$2 token=$3 bucket=$4 path=$5 file=$6
  (cd "$root/tests/conformance" && timeout "${STEP_TIMEOUT:-900}" node --input-type=module -e "
import * as hub from '@huggingface/hub';
import { openAsBlob } from 'node:fs';
const [url, accessToken, name, path, file] = process.argv.slice(1);
const common = { hubUrl: url, accessToken };
const repo = { type: 'bucket', name };
await hub.createRepo({ ...common, repo });
await hub.uploadFiles({ ...common, repo, files: [{ path, content: await openAsBlob(file) }] });
" "$url" "$token" "$bucket" "$path" "$file")
}
