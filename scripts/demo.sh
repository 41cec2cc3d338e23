#!/usr/bin/env bash
# Try hf-mount without an account: start hf-local-hub on 127.0.0.1 with a demo bucket
# (filled by the independent @huggingface/hub client), mount it with `hf-mount start --fuse`,
# read and write through the mount, show `hf-mount status`, then stop and clean up.
# Needs root (or /dev/fuse access) and the binaries from ./install.sh (or BIN_DIR=build/src/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=${BIN_DIR:-$HOME/.local/bin}
for b in hf-mount hf-mount-fuse hf-local-hub; do
  [ -x "$bin_dir/$b" ] || { echo "demo: $bin_dir/$b not found; run ./install.sh first" >&2; exit 1; }
done
if [ ! -d tests/conformance/node_modules/@huggingface/hub ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi

work=$(mktemp -d /tmp/hf-mount-demo.XXXXXX)
token="hf_demo_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mnt="$work/mnt"
mkdir -p "$mnt" "$work/hub"
hub_pid=""
cleanup() {
  "$bin_dir/hf-mount" stop "$mnt" >/dev/null 2>&1 || true
  grep -q " $mnt " /proc/mounts && umount -l "$mnt" 2>/dev/null || true
  [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> starting hf-local-hub (data in $work/hub)"
"$bin_dir/hf-local-hub" serve --data "$work/hub" --port 0 --token "demo:$token" >"$work/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 100); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/hub.log" | head -1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { cat "$work/hub.log"; echo "demo: hub did not start" >&2; exit 1; }
echo "    $url"

echo "==> creating bucket demo/files and uploading with @huggingface/hub"
node scripts/demo-upload.mjs "$url" "$token" demo/files | tee "$work/upload.log"
expected=$(awk '/^sha256 /{print $3}' "$work/upload.log")

echo "==> hf-mount start --fuse bucket demo/files $mnt"
HOME="$work" HF_TOKEN="$token" "$bin_dir/hf-mount" start --fuse --hub-endpoint "$url" \
  --cache-dir "$work/cache" bucket demo/files "$mnt"

echo "==> ls -lR $mnt"
ls -lR "$mnt"
echo "==> cat $mnt/README.txt"
cat "$mnt/README.txt"
echo "==> sha256 of a 20 MiB file read lazily through the mount"
actual=$(sha256sum "$mnt/checkpoints/weights.bin" | cut -d' ' -f1)
if [ "$actual" = "$expected" ]; then
  echo "    $actual (identical to the uploaded bytes)"
else
  echo "demo: checksum mismatch: mount $actual, uploaded $expected" >&2
  exit 1
fi

echo "==> writing $mnt/notes/hello.txt"
if (mkdir -p "$mnt/notes" && echo "written through hf-mount" >"$mnt/notes/hello.txt") 2>"$work/write.err"; then
  echo "    read back through the mount: $(cat "$mnt/notes/hello.txt")"
  echo "    read back from the hub (resolve API): $(curl -fsS -H "Authorization: Bearer $token" \
    "$url/buckets/demo/files/resolve/notes/hello.txt")"
else
  echo "    writes are not supported by this build yet: $(cat "$work/write.err" 2>/dev/null)"
fi

echo "==> hf-mount status"
HOME="$work" "$bin_dir/hf-mount" status
echo "==> hf-mount stop $mnt"
HOME="$work" "$bin_dir/hf-mount" stop "$mnt"
echo "demo finished"
