#!/usr/bin/env bash
# Installs hf-mount on a Debian/Ubuntu machine: Debian dependencies, a Release build, and the
# binaries (hf-mount, hf-mount-fuse, hf-mount-nfs, hf-local-hub) in $INSTALL_DIR
# (default ~/.local/bin). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
install_dir=${INSTALL_DIR:-$HOME/.local/bin}
build_dir=${BUILD_DIR:-build-release}

echo "==> installing Debian dependencies"
bash scripts/install-deps.sh
echo "==> building (Release) in $build_dir"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHFM_BUILD_TESTS=OFF \
  -DHFM_BUILD_BENCH=OFF -DHFM_WERROR=OFF >/dev/null
cmake --build "$build_dir"
echo "==> installing into $install_dir"
mkdir -p "$install_dir"
installed=()
for bin in hf-mount hf-mount-fuse hf-mount-nfs hf-local-hub; do
  if [ -x "$build_dir/src/bin/$bin" ]; then
    install -m 0755 "$build_dir/src/bin/$bin" "$install_dir/$bin"
    installed+=("$bin")
  fi
done
echo "installed: ${installed[*]:-nothing}"
case ":$PATH:" in
  *":$install_dir:"*) ;;
  *) echo "note: $install_dir is not on your PATH; add it: export PATH=\"$install_dir:\$PATH\"" ;;
esac
