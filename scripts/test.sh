#!/usr/bin/env bash
# Builds everything and runs every test: unit, conformance (node + @huggingface/hub) and
# integration (real FUSE mounts against hf-local-hub on 127.0.0.1). This is the README's test
# command and exactly what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
if [ -f tests/conformance/package-lock.json ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHFM_WERROR=ON
cmake --build "$build_dir"
ctest --test-dir "$build_dir" --output-on-failure --timeout 600 -j2 ${CTEST_ARGS:-}
