#!/usr/bin/env bash
# Build cost of the generated workspace (issue 8): a cold `cargo build` of the
# built-in example in an empty target directory, timed, with the number of crates
# compiled and the dependencies present in more than one version.
# Usage: bash bench/build.sh [debug|release]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-debug}
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/msgen -q -C "$work" new blogsys --yes
cd "$work/blogsys"
# Resolve (and download) first, so that the timing is the build alone.
cargo fetch --quiet
flags=()
[ "$profile" = release ] && flags+=(--release)
start=$(date +%s.%N)
CARGO_TARGET_DIR="$work/target" cargo build "${flags[@]}" 2>"$work/build.log"
end=$(date +%s.%N)
crates=$(grep -c '^ *Compiling ' "$work/build.log" || true)
members=$(grep -c '^ *Compiling .* (/' "$work/build.log" || true)
# Crates present in more than one *version* (`cargo tree -d` also repeats a crate
# built with two feature sets).
dups=$(cargo tree -e normal -d --depth 0 2>/dev/null | grep -E '^[a-z0-9_-]+ v' | sort -u \
    | awk '{n[$1]++; v[$1]=v[$1] " " $2} END {for (k in n) if (n[k] > 1) printf "%s (%s) ", k, substr(v[k], 2)}')
printf 'cold cargo build (%s) of the built-in example: %.1f s, %s crates compiled (%s of them the workspace'"'"'s)\n' \
    "$profile" "$(echo "$end - $start" | bc)" "$crates" "$members"
printf 'dependencies in more than one version: %s\n' "${dups:-none}"
printf 'machine: %s cores, %s; msgen %s\n' "$(nproc)" "$(free -g | awk '/Mem:/ {print $2 " GiB"}')" "$(git -C "$OLDPWD" rev-parse --short HEAD 2>/dev/null || echo '?')"
