#!/usr/bin/env bash
# Fails (and lists the files) when a tracked C++ file is not clang-format clean with the
# repository's .clang-format. Fix with: git ls-files '*.cpp' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cc' '*.hpp')
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/hfm-format.$$; then
  grep -o '^[^:]*:' /tmp/hfm-format.$$ | sort -u | sed 's/:$//; s/^/not clang-format clean: /'
  rm -f /tmp/hfm-format.$$
  exit 1
fi
rm -f /tmp/hfm-format.$$
echo "clang-format: ${#files[@]} files clean"
