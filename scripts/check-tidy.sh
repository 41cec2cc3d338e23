#!/usr/bin/env bash
# Runs clang-tidy (the repository's .clang-tidy: every finding is an error) on the .cpp files
# under the given directories, in parallel, and fails if any file has a finding.
#
#   scripts/check-tidy.sh [DIR...]      default: every layer under src/
#
# Environment: BUILD_DIR   directory with compile_commands.json (default: build-tidy; configured
#                          here with the project's CMake options when it has none),
#              CLANG_TIDY  the clang-tidy binary (default: clang-tidy),
#              JOBS        parallel clang-tidy processes (default: nproc),
#              TIDY_CHECKS extra --checks filter appended to .clang-tidy's (e.g. '-clang-analyzer-*').
# Headers are checked through the files that include them (HeaderFilterRegex: include/hfm/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

clang_tidy=${CLANG_TIDY:-clang-tidy}
jobs=${JOBS:-$(nproc)}
build_dir=${BUILD_DIR:-build-tidy}
case $build_dir in /*) ;; *) build_dir=$root/$build_dir ;; esac

if ! command -v "$clang_tidy" >/dev/null; then
  echo "check-tidy: $clang_tidy not found" >&2
  exit 2
fi
if [ $# -eq 0 ]; then
  set -- src/*/
fi
files=()
for dir in "$@"; do
  if [ ! -d "$dir" ]; then
    echo "check-tidy: no such directory: $dir" >&2
    exit 2
  fi
  while IFS= read -r f; do files+=("$f"); done < <(find "$dir" -name '*.cpp' -type f | sort)
done
if [ ${#files[@]} -eq 0 ]; then
  echo "check-tidy: no .cpp files under: $*" >&2
  exit 2
fi

if [ ! -f "$build_dir/compile_commands.json" ]; then
  echo "check-tidy: configuring $build_dir for its compile database"
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s)
# One clang-tidy per file; each writes its findings to its own log so output never interleaves.
# A file's log is kept (and the run fails) when clang-tidy exits non-zero.
printf '%s\0' "${files[@]}" | xargs -0 -P "$jobs" -n 1 bash -c '
  log="$2/$(echo "$4" | tr / _).log"
  if "$0" -p "$1" --quiet ${3:+"--checks=$3"} "$4" >"$log" 2>&1; then rm -f "$log"; fi
' "$clang_tidy" "$build_dir" "$out" "${TIDY_CHECKS:-}" || true

failed=0
for f in "${files[@]}"; do
  log="$out/$(echo "$f" | tr / _).log"
  if [ -f "$log" ]; then
    failed=$((failed + 1))
    echo "=== $f"
    # Drop clang-tidy's "N warnings generated" noise; keep findings, notes and code excerpts.
    grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Use -system-headers' "$log" || true
  fi
done
elapsed=$(($(date +%s) - start))
if [ "$failed" -ne 0 ]; then
  echo "clang-tidy: findings in $failed of ${#files[@]} files (${elapsed}s)"
  exit 1
fi
echo "clang-tidy: ${#files[@]} files clean (${elapsed}s, $jobs jobs)"
