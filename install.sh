#!/usr/bin/env bash
# Installs hf-mount from this source tree on a Debian/Ubuntu machine:
#   1. the Debian packages it needs (scripts/install-deps.sh; apt-get skips what is installed),
#   2. a Release build in $BUILD_DIR (default build-release; incremental when run again),
#   3. the binaries hf-mount, hf-mount-fuse, hf-mount-nfs, hf-local-hub into $INSTALL_DIR
#      (default ~/.local/bin), each replaced atomically (a running mount keeps its binary),
#   4. the systemd user unit template hf-mount@.service into ~/.config/systemd/user
#      (only with INSTALL_SYSTEMD_UNIT=1; see packaging/systemd/hf-mount@.service).
# Safe to run again: every step converges to the same result.
#
# Environment: INSTALL_DIR, BUILD_DIR, SKIP_DEPS=1 (do not touch apt), JOBS (build parallelism),
# INSTALL_SYSTEMD_UNIT=1. For a .deb instead: (cd "$BUILD_DIR" && cpack -G DEB).
set -euo pipefail
cd "$(dirname "$0")"

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

install_dir=${INSTALL_DIR:-$HOME/.local/bin}
build_dir=${BUILD_DIR:-build-release}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
binaries=(hf-mount hf-mount-fuse hf-mount-nfs hf-local-hub)

echo "hf-mount install: deps -> Release build in $build_dir -> binaries in $install_dir"

if [ "${SKIP_DEPS:-0}" = 1 ]; then
  echo "==> skipping Debian dependencies (SKIP_DEPS=1)"
elif command -v apt-get >/dev/null 2>&1; then
  echo "==> checking Debian dependencies (installs only what is missing)"
  bash scripts/install-deps.sh
else
  echo "==> no apt-get here: install the libraries listed in scripts/install-deps.sh yourself"
fi

echo "==> configuring and building (Release, -j$jobs) in $build_dir"
generator=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
  generator=(-G Ninja)  # an existing build dir keeps the generator it was made with
fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DHFM_BUILD_TESTS=OFF \
  -DHFM_BUILD_BENCH=OFF -DHFM_WERROR=OFF >/dev/null
cmake --build "$build_dir" -j "$jobs"

echo "==> installing into $install_dir"
mkdir -p "$install_dir"
installed=()
for bin in "${binaries[@]}"; do
  src="$build_dir/src/bin/$bin"
  [ -x "$src" ] || continue
  if cmp -s "$src" "$install_dir/$bin"; then
    echo "    $bin: up to date"
  else
    # Copy then rename: never writes into a binary a running mount is executing.
    install -m 0755 "$src" "$install_dir/.$bin.new"
    mv -f "$install_dir/.$bin.new" "$install_dir/$bin"
    echo "    $bin: installed"
  fi
  installed+=("$bin")
done
if [ ${#installed[@]} -eq 0 ]; then
  echo "error: nothing was built in $build_dir/src/bin" >&2
  exit 1
fi

if [ "${INSTALL_SYSTEMD_UNIT:-0}" = 1 ]; then
  unit_dir=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
  echo "==> installing the systemd user unit into $unit_dir"
  mkdir -p "$unit_dir"
  install -m 0644 packaging/systemd/hf-mount@.service "$unit_dir/hf-mount@.service"
  echo "    then: systemctl --user daemon-reload; see packaging/systemd/hf-mount.env.example"
fi

echo "installed: ${installed[*]} ($("$install_dir/hf-mount" --version 2>/dev/null || echo "version unknown"))"
case ":$PATH:" in
  *":$install_dir:"*) ;;
  *) echo "note: $install_dir is not on your PATH; add it: export PATH=\"$install_dir:\$PATH\"" ;;
esac
if ! command -v mount.nfs >/dev/null 2>&1 && [ ! -x /sbin/mount.nfs ]; then
  echo "note: no mount.nfs here; use 'hf-mount start --fuse ...' (or apt-get install nfs-common)"
fi
