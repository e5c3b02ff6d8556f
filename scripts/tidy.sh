#!/usr/bin/env bash
# clang-tidy with the project's .clang-tidy over every source file of src/, apps/ and python/src/
# (and the project headers they include), as compiled by the dev preset. Fails, listing the findings,
# unless there are none. CI runs this from scripts/test.sh.
#   scripts/tidy.sh           # the static analyzer in its shallow mode (little inlining):
#                             # every check of .clang-tidy, about 3 minutes on 2 cores
#   scripts/tidy.sh --deep    # the analyzer's default depth: about 7 minutes on 2 idle cores,
#                             # for changes to the Redis client, the Beast server or lifetimes
#   scripts/tidy.sh FILE...   # only these files (shallow)
set -euo pipefail
cd "$(dirname "$0")/.."
db=build/dev/compile_commands.json
[ -f "$db" ] || cmake --preset dev >/dev/null
command -v clang-tidy-14 >/dev/null || { echo "tidy: clang-tidy-14 is missing (scripts/install-deps.sh)" >&2; exit 2; }

analyzer=(--extra-arg=-Xclang --extra-arg=-analyzer-config --extra-arg=-Xclang --extra-arg=mode=shallow)
if [[ "${1:-}" == "--deep" ]]; then
  analyzer=()
  shift
fi
if [[ $# -gt 0 ]]; then
  files=("$@")
else
  # Generated sources (the build tree) are not ours to tidy.
  mapfile -t files < <(python3 -c 'import json, os, sys
root = os.getcwd()
for e in json.load(open(sys.argv[1])):
    f = os.path.relpath(os.path.join(e["directory"], e["file"]), root)
    if f.startswith(("src/", "apps/", "python/src/")):
        print(f)' "$db" | sort -u)
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export out
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -I{} sh -c \
  'f=$1; shift; clang-tidy-14 -p build/dev --quiet "$@" "$f" >"$out/$(echo "$f" | tr / _).log" 2>&1 || true' \
  _ {} "${analyzer[@]}"
# A header's finding is reported once per file that includes it: count each place once.
findings=$(cat "$out"/*.log | grep -E '^[^ ].*: (warning|error): ' | sort -u || true)
if [[ -n "$findings" ]]; then
  echo "$findings" >&2
  echo "tidy: $(echo "$findings" | wc -l) finding(s) in ${#files[@]} files; details:" >&2
  cat "$out"/*.log | grep -vE '^[0-9]+ warnings? generated' >&2
  exit 1
fi
echo "tidy: ${#files[@]} files, no findings"
