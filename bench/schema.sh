#!/usr/bin/env bash
# Cost of the schema work (issue: the database follows services.toml): a project of
# N services (three resources each) is rendered, then
#   plain   `msgen generate` with nothing changed (reads every record and migration,
#           diffs every schema, writes nothing),
#   evolve  `msgen generate` after one field of every resource changed (a new
#           migration per resource, models and SQL rewritten),
#   touch   the same render after a change that rewrites as many files but no
#           schema (a description in every model doc), for scale.
#   before  with BASELINE=path/to/an/older/msgen: that binary's `generate` after
#           the same field change (models rewritten, no schema work), on a
#           project it rendered itself: the A/B of the schema work's cost.
# Each is run R times on a fresh copy; medians are printed.
# Usage: [BASELINE=old-msgen] bash bench/schema.sh [N] [R]   (default: 500 3)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-500}"
rounds="${2:-3}"

cargo build --release --quiet
msgen="$PWD/target/release/msgen"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

config() { # $1: the fields of every resource
    local i r
    printf '[project]\nname = "bench"\n\n[gateway]\nport = 8080\n'
    for ((i = 1; i <= n; i++)); do
        printf '\n[[services]]\nname = "svc%d"\nport = %d\n' "$i" $((10000 + i))
        for r in a b c; do
            printf '  [[services.resources]]\n  name = "res%d_%s"\n' "$i" "$r"
            printf '  fields = %s\n' "$1"
        done
    done
}

base='{ title = "string", body = "text", count = "i32", price = "f64?", live = "bool" }'
evolved='{ title = "string", body = "text", count = "i64", price = "f64?", live = "bool" }'
# Same files rewritten, no column changed: a field moved (declaration order is the
# order of the model's fields and of every SQL statement, not of the table).
touched='{ body = "text", title = "string", count = "i32", price = "f64?", live = "bool" }'

config "$base" >"$work/base.toml"
"$msgen" -q -C "$work" new proto --yes --config base.toml
baseline="${BASELINE:-}"
kinds=(plain evolve touch)
if [ -n "$baseline" ]; then
    "$baseline" -q -C "$work" new proto-before --yes --config base.toml
    kinds+=(before)
fi

seconds() { # the command's wall time, from the clock in ns
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f\n", (b - a) / 1e9 }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

run() { # $1: fields, or "" for none changed; $2, $3: binary and prototype
    local bin="${2:-$msgen}" proto="${3:-proto}"
    rm -rf "$work/p"
    cp -r "$work/$proto" "$work/p"
    if [ -n "$1" ]; then config "$1" >"$work/p/services.toml"; fi
    seconds "$bin" -q -C "$work/p" generate
}

declare -A t
for kind in "${kinds[@]}"; do
    : >"$work/$kind"
done
for ((round = 1; round <= rounds; round++)); do
    run "" >>"$work/plain"
    run "$evolved" >>"$work/evolve"
    run "$touched" >>"$work/touch"
    if [ -n "$baseline" ]; then run "$evolved" "$baseline" proto-before >>"$work/before"; fi
done
for kind in "${kinds[@]}"; do t[$kind]=$(median <"$work/$kind"); done
run "$evolved" >/dev/null
migrations=$(find "$work/p/services" -path '*/migrations/*' -name '*.sql' | wc -l)
printf '%-8s %10s %10s\n' run "median s" "vs plain"
for kind in "${kinds[@]}"; do
    awk -v k="$kind" -v s="${t[$kind]}" -v p="${t[plain]}" 'BEGIN { printf "%-8s %10.3f %10.2f\n", k, s, s / p }'
done
awk -v e="${t[evolve]}" -v c="${t[touch]}" 'BEGIN { printf "schema work: evolve / touch = %.2f (as many files rewritten, plus a migration per resource)\n", e / c }'
if [ -n "$baseline" ]; then
    awk -v e="${t[evolve]}" -v b="${t[before]}" 'BEGIN { printf "schema work: evolve / before = %.2f (the same change without schema work)\n", e / b }'
fi
echo "services: $n, resources: $((3 * n)), migration files after evolve: $migrations"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m); msgen $(git rev-parse --short HEAD)"
