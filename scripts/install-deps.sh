#!/usr/bin/env bash
# Installs every build, test and runtime dependency from Debian's packages. Used by
# install.sh and .ci/run; safe to run again (apt-get skips what is installed).
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config clang clang-format clang-tidy libclang-rt-14-dev
  # libraries
  libfuse3-dev libnfs-dev libcurl4-openssl-dev nlohmann-json3-dev libxxhash-dev libzstd-dev
  libspdlog-dev libcli11-dev liblz4-dev librust-blake3-dev libsqlite3-dev libmicrohttpd-dev
  libssl-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev fuse3 libnfs-utils b3sum sqlite3 curl git python3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# node (for the conformance tests against @huggingface/hub): Debian's nodejs if none is present.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q nodejs npm
fi
