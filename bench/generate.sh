#!/usr/bin/env bash
# Generation speed: `msgen new` from services.toml files with 1, 10, 100 and 500
# services (three resources each), against the floor of copying the same output tree
# (`cp -r`), in the same run. Prints wall time, time per service and peak memory.
# Usage: bash bench/generate.sh [COUNTS...]   (default: 1 10 100 500)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-1 10 100 500}")
read -r -a counts <<<"${counts[*]}"

cargo build --release --quiet
msgen="$PWD/target/release/msgen"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

config() { # N → services.toml with N services
    local n=$1
    printf '[project]\nname = "bench"\n\n[gateway]\nport = 8080\n'
    for ((i = 1; i <= n; i++)); do
        printf '\n[[services]]\nname = "svc%d"\nport = %d\n' "$i" $((10000 + i))
        for r in a b c; do
            printf '  [[services.resources]]\n  name = "res%d_%s"\n' "$i" "$r"
            printf '  fields = { title = "string", body = "text", count = "i32", price = "f64?", live = "bool" }\n'
        done
    done
}

# Seconds (wall, from the clock in ns) and peak RSS (KiB, from GNU time) of a command.
measure() {
    local start end
    start=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    echo "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", (b - a) / 1e9 }') $(tail -n1 "$work/rss")"
}

printf '%-9s %10s %10s %8s %14s %12s %9s\n' services "msgen s" "cp -r s" ratio "ms/service" "peak MiB" files
for n in "${counts[@]}"; do
    config "$n" >"$work/s$n.toml"
    rm -rf "$work/out$n" "$work/copy$n"
    read -r t_gen rss < <(measure "$msgen" -q -C "$work" new "out$n" --yes --config "s$n.toml")
    read -r t_cp _ < <(measure cp -r "$work/out$n" "$work/copy$n")
    files=$(find "$work/out$n" -type f | wc -l)
    awk -v n="$n" -v g="$t_gen" -v c="$t_cp" -v m="$rss" -v f="$files" 'BEGIN {
        ratio = (c > 0) ? g / c : 0;
        printf "%-9d %10.3f %10.3f %8.2f %14.2f %12.1f %9d\n", n, g, c, ratio, 1000 * g / n, m / 1024, f }'
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m); msgen $(git rev-parse --short HEAD)"
