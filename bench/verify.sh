#!/usr/bin/env bash
# What it costs a service to check tokens itself (defence in depth), printed as
# figures: wrk through the generated gateway to the built-in example's user service,
# GET /api/v1/users/1 with a token, against the same service built without its
# `require_token` layer (the only difference: that line removed from its routes.rs).
# The two builds are measured in alternation, ROUNDS times; medians and their ratio
# are printed, with the CPU time the service spent per request.
# Needs PostgreSQL on 127.0.0.1:5432 and NATS on 127.0.0.1:4222.
# Usage: bash bench/verify.sh [SECONDS] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/wrk.sh
. bench/wrk.sh
secs=${1:-10}
conns=${2:-64}
rounds=${3:-5}
command -v wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }

cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

target/release/msgen -q -C "$work" new blogsys --yes
export CARGO_TARGET_DIR="${MSGEN_BENCH_TARGET_DIR:-$PWD/target/bench}"
bin="$CARGO_TARGET_DIR/release"
routes="$work/blogsys/services/user/src/routes.rs"
grep -q 'require_token' "$routes" || { echo "$routes has no require_token layer" >&2; exit 1; }
(cd "$work/blogsys" && cargo build --release --quiet --bins)
cp "$bin/user-service" "$work/user-service-checks"
# The same service, its routes without the token check (the gateway still checks):
# the `.route_layer(..require_token..)` call removed, however rustfmt laid it out.
python3 - "$routes" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
trusting, n = re.subn(r"\n\s*\.route_layer\(\s*(?:common::auth::)?require_token\([^()]*\)\s*,?\s*\)", "", text)
if n != 1:
    sys.exit(f"{path}: {n} require_token layers removed, not 1")
open(path, "w", encoding="utf-8").write(trusting)
PY
(cd "$work/blogsys" && cargo build --release --quiet -p user-service)
cp "$bin/user-service" "$work/user-service-trusts"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 100); do curl -fs "$1/health" >/dev/null 2>&1 && return; sleep 0.1; done; echo "$1 never came up" >&2; exit 1; }

secret=bench-secret-bench-secret-bench-secret
run=$$
auth_port=$(free_port); user_port=$(free_port); gw_port=$(free_port)
common_env=(HOST=127.0.0.1 RUST_LOG=error JWT_SECRET="$secret" NATS_URL=nats://127.0.0.1:4222 NATS_SUBJECT_PREFIX="verify$run")
env "${common_env[@]}" PORT="$auth_port" \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/verify_${run}_auth" "$bin/auth-service" & pids+=($!)
wait_up "http://127.0.0.1:$auth_port"
user_db="postgres://postgres@127.0.0.1:5432/verify_${run}_user"
# Starts one build of the user service on $user_port; its pid in $user_pid.
start_user() {
    env "${common_env[@]}" PORT="$user_port" DATABASE_URL="$user_db" "$work/user-service-$1" &
    user_pid=$!
    pids+=("$user_pid")
    wait_up "http://127.0.0.1:$user_port"
}
stop_user() { kill "$user_pid"; wait "$user_pid" 2>/dev/null || true; }
env "${common_env[@]}" PORT="$gw_port" METRICS_PORT="$(free_port)" \
    AUTH_SERVICE_URL="http://127.0.0.1:$auth_port" USER_SERVICE_URL="http://127.0.0.1:$user_port" \
    BLOG_SERVICE_URL="http://127.0.0.1:9" "$bin/gateway" & pids+=($!)
gw="http://127.0.0.1:$gw_port"
wait_up "$gw"

curl -fs -X POST "$gw/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench password"}' >/dev/null
token=$(curl -fs -X POST "$gw/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
start_user checks
curl -fs -X POST "$gw/api/v1/users" -H 'content-type: application/json' -H "Authorization: Bearer $token" \
    -d '{"email":"ada@example.com","display_name":"Ada"}' >/dev/null
# Without a token the trusting build answers 200 on its own port; the checking one 401.
direct=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$user_port/api/v1/users/1")
[ "$direct" = 401 ] || { echo "the checking build answered $direct without a token" >&2; exit 1; }
stop_user
start_user trusts
direct=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$user_port/api/v1/users/1")
[ "$direct" = 200 ] || { echo "the trusting build answered $direct without a token" >&2; exit 1; }
stop_user

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# name → "name rps p50 p99 cpu non2xx" through the gateway, cpu being the service's
# CPU time per request in µs.
bench() {
    local name=$1 out before after
    before=$(ticks "$user_pid")
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $token" "$gw/api/v1/users/1")
    after=$(ticks "$user_pid")
    wrk_row "$name" $((after - before)) "$secs" 34 <<<"$out"
}

results="$work/results"
: >"$results"
printf '%-34s %12s %11s %11s %11s %8s\n' "GET /api/v1/users/1 via gateway" "req/s" p50 p99 "svc cpu/req" non-2xx
for round in $(seq 1 "$rounds"); do
    echo "-- round $round/$rounds"
    for build in trusts checks; do
        start_user "$build"
        wrk -t1 -c4 -d1s -H "Authorization: Bearer $token" "$gw/api/v1/users/1" >/dev/null
        label="service trusts the gateway"
        [ "$build" = checks ] && label="service checks tokens itself"
        bench "$label" | tee -a "$results"
        stop_user
    done
done
echo "-- medians over $rounds rounds"
wrk_medians "$results" "service checks tokens itself|service trusts the gateway"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; msgen $(git rev-parse --short HEAD)"
