#!/usr/bin/env bash
# Fuzz smoke test: configures a clang build of just the fuzz targets (sanitizers + libFuzzer),
# writes the seed corpus and runs every target for HFM_FUZZ_SECONDS (default 20) seconds.
# Fails on any crash, sanitizer report, leak or timeout. Usage: run.sh <source-dir> <build-dir>
set -euo pipefail
src=${1:?usage: run.sh <source-dir> <build-dir>}
build=${2:?usage: run.sh <source-dir> <build-dir>}
secs=${HFM_FUZZ_SECONDS:-20}
targets=(chunk_decode_fuzz xorb_parse_fuzz shard_parse_fuzz)
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"

gen=()
command -v ninja > /dev/null && gen=(-G Ninja)
# Only configure once: reconfiguring the whole project costs more than building our targets.
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  CC=clang CXX=clang++ cmake -S "$src" -B "$build" "${gen[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHFM_BUILD_FUZZ=ON -DHFM_BUILD_TESTS=OFF \
    -DHFM_BUILD_BENCH=OFF -DHFM_WERROR=OFF \
    -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san" > "$build.configure.log" 2>&1 ||
    { cat "$build.configure.log"; exit 1; }
fi
cmake --build "$build" --target "${targets[@]}" xet_fuzz_seeds -j2

corpus="$build/corpus"
work="$build/fuzz-work"
rm -rf "$corpus" "$work"
mkdir -p "$build/crashes"
"$build/tests/fuzz/xet_fuzz_seeds" "$corpus"
trap 'rm -rf "$work"' EXIT

status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  log="$work/$t.log"
  echo "== $t: ${secs}s, seeds $(ls "$corpus/$t" | wc -l)"
  # New inputs go to the scratch dir (removed on exit); crash artifacts stay in $build/crashes.
  if "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -max_len=600000 -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
      "$work/$t" "$corpus/$t" > "$log" 2>&1; then
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+.*DONE" "$log" || true
  else
    echo "!! $t failed:"; tail -60 "$log"
    for a in "$build/crashes/$t"-*; do [[ -f "$a" ]] && { echo "artifact $a:"; xxd "$a" | head -20; }; done
    status=1
  fi
done
exit $status
