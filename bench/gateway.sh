#!/usr/bin/env bash
# Gateway overhead and service throughput, printed as figures:
#  - wrk through the generated gateway (release build) and through nginx proxy_pass
#    with upstream keep-alive, to the same user-service instance, same run, same
#    connection counts: /health and a resource GET;
#  - a resource GET and POST straight to the service, on the local PostgreSQL.
# Needs PostgreSQL on 127.0.0.1:5432 and NATS on 127.0.0.1:4222 (the built-in example
# consumes events). Usage: bash bench/gateway.sh [SECONDS] [CONNECTIONS] [ROUNDS]
# Gateway and nginx are measured in alternation, ROUNDS times (default 3): on a small
# machine one run moves by ~10 points, so the medians and their ratios are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/wrk.sh
. bench/wrk.sh
secs=${1:-10}
conns=${2:-64}
rounds=${3:-3}
for tool in wrk nginx; do
    command -v "$tool" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk nginx >/dev/null; }
done

cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

target/release/msgen -q -C "$work" new blogsys --yes
export CARGO_TARGET_DIR="${MSGEN_BENCH_TARGET_DIR:-$PWD/target/bench}"
(cd "$work/blogsys" && cargo build --release --quiet --bins)
bin="$CARGO_TARGET_DIR/release"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 100); do curl -fs "$1/health" >/dev/null 2>&1 && return; sleep 0.1; done; echo "$1 never came up" >&2; exit 1; }

secret=bench-secret-bench-secret-bench-secret
run=$$
auth_port=$(free_port); user_port=$(free_port); gw_port=$(free_port); nginx_port=$(free_port)
common_env=(HOST=127.0.0.1 RUST_LOG=error NATS_URL=nats://127.0.0.1:4222 NATS_SUBJECT_PREFIX="bench$run")
env "${common_env[@]}" PORT="$auth_port" JWT_SECRET="$secret" \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/bench_${run}_auth" "$bin/auth-service" & pids+=($!)
# The user service checks tokens itself too (bench/verify.sh measures what that costs).
env "${common_env[@]}" PORT="$user_port" JWT_SECRET="$secret" \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/bench_${run}_user" "$bin/user-service" & pids+=($!)
user_pid=$!
wait_up "http://127.0.0.1:$auth_port"
wait_up "http://127.0.0.1:$user_port"
# The gateway's environment but its ports (also used for its callgrind run below).
gw_env=(HOST=127.0.0.1 RUST_LOG=error JWT_SECRET="$secret"
    AUTH_SERVICE_URL="http://127.0.0.1:$auth_port" USER_SERVICE_URL="http://127.0.0.1:$user_port"
    BLOG_SERVICE_URL="http://127.0.0.1:9")
env "${gw_env[@]}" PORT="$gw_port" METRICS_PORT="$(free_port)" "$bin/gateway" & pids+=($!)
gateway_pid=$!
wait_up "http://127.0.0.1:$gw_port"

cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    upstream user { server 127.0.0.1:$user_port; keepalive 128; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://user;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work"
nginx_pids=
for _ in $(seq 1 50); do
    [ -s "$work/nginx.pid" ] && nginx_pids=$(pgrep -P "$(cat "$work/nginx.pid")" | tr '\n' ' ' || true)
    [ -n "$nginx_pids" ] && break
    sleep 0.1
done
[ -n "$nginx_pids" ] || { echo "nginx did not start its workers" >&2; exit 1; }

gw="http://127.0.0.1:$gw_port"
curl -fs -X POST "$gw/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench password"}' >/dev/null
token=$(curl -fs -X POST "$gw/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
curl -fs -X POST "http://127.0.0.1:$user_port/api/v1/users" -H 'content-type: application/json' \
    -H "Authorization: Bearer $token" -d '{"email":"ada@example.com","display_name":"Ada"}' >/dev/null

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"email":"load@example.com","display_name":"Load"}'
wrk.headers["Content-Type"] = "application/json"
LUA

# CPU time (user + system, clock ticks) the processes PIDS have used so far.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }

# name url pids [wrk args...] → "name rps p50 p99 cpu non2xx", where cpu is the CPU
# time the proxy (PIDS) spent per request, in µs: on a machine whose cores wrk, the
# proxy, the service and PostgreSQL share, the steadiest measure of a proxy's cost.
bench() {
    local name=$1 url=$2 measured=$3; shift 3
    local out before after
    # shellcheck disable=SC2086
    before=$(ticks $measured)
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" "$url")
    # shellcheck disable=SC2086
    after=$(ticks $measured)
    wrk_row "$name" $((after - before)) "$secs" 34 <<<"$out"
}

header() { printf '%-34s %12s %11s %11s %11s %8s\n' "$1" "req/s" p50 p99 "cpu/req" non-2xx; }

results="$work/results"
: >"$results"
header "target ($conns connections, ${secs}s)"
for round in $(seq 1 "$rounds"); do
    echo "-- round $round/$rounds"
    bench "gateway → /health (user)" "$gw/health/user" "$gateway_pid" | tee -a "$results"
    bench "nginx → /health (user)" "http://127.0.0.1:$nginx_port/health" "$nginx_pids" | tee -a "$results"
    bench "gateway → GET /api/v1/users/1" "$gw/api/v1/users/1" "$gateway_pid" -H "Authorization: Bearer $token" | tee -a "$results"
    bench "nginx → GET /api/v1/users/1" "http://127.0.0.1:$nginx_port/api/v1/users/1" "$nginx_pids" -H "Authorization: Bearer $token" | tee -a "$results"
done
# Here cpu/req is the service's own.
bench "service GET /api/v1/users/1" "http://127.0.0.1:$user_port/api/v1/users/1" "$user_pid" -H "Authorization: Bearer $token"
bench "service POST /api/v1/users" "http://127.0.0.1:$user_port/api/v1/users" "$user_pid" -s "$work/post.lua" -H "Authorization: Bearer $token"

# Medians over the rounds, and the gateway's share of nginx's throughput.
echo "-- medians over $rounds rounds"
header "target"
wrk_medians "$results" "gateway → /health (user)|nginx → /health (user)" \
    "gateway → GET /api/v1/users/1|nginx → GET /api/v1/users/1"
# User-space instructions per proxied request, counted by callgrind (valgrind): the
# same binary gives the same count run after run, where time on two shared cores moves
# by ±10%. Two runs of different lengths; their difference cancels start-up and exit.
# The gateway and a single nginx process each run under callgrind on a port of their own.
if command -v valgrind >/dev/null; then
    cg_gw_port=$(free_port); cg_nginx_port=$(free_port)
    sed -e "s/listen 127.0.0.1:$nginx_port/listen 127.0.0.1:$cg_nginx_port/" \
        -e "s|pid $work/nginx.pid|pid $work/nginx-cg.pid|" "$work/nginx.conf" >"$work/nginx-cg.conf"
    # name url seconds [wrk args...] -- command...  → "requests instructions"
    counted() {
        local name=$1 url=$2 seconds=$3; shift 3
        local wrk_args=()
        while [ "$1" != -- ]; do wrk_args+=("$1"); shift; done
        shift
        local out="$work/callgrind.$name.$seconds" vpid n
        # Environment first: valgrind does not follow an `env` that execs the program.
        env "${cg_env[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$work/callgrind.log" 2>&1 &
        vpid=$!
        for _ in $(seq 1 300); do curl -fs "$url" "${wrk_args[@]}" >/dev/null 2>&1 && break; sleep 0.1; done
        n=$(wrk -t1 -c8 -d"${seconds}s" "${wrk_args[@]}" "$url" | awk '/requests in/ {print $1}')
        kill -INT "$vpid"; wait "$vpid" || true
        echo "$n $(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')"
    }
    per_request() {
        local a b
        read -r -a a < <(counted "$1" "$2" 2 "${@:3}")
        read -r -a b < <(counted "$1" "$2" 10 "${@:3}")
        [ "${a[0]:-0}" -gt 0 ] && [ "${b[0]:-0}" -gt "${a[0]}" ] || { echo "callgrind run of $1 failed" >&2; tail -5 "$work/callgrind.log" >&2; exit 1; }
        echo $(( (b[1] - a[1]) / (b[0] - a[0]) ))
    }
    nginx_cmd=(nginx -c "$work/nginx-cg.conf" -p "$work" -g "daemon off; master_process off;")
    echo "-- user-space instructions per request (callgrind)"
    printf '%-34s %12s %12s %8s\n' path gateway nginx ratio
    for what in "/health (user)|/health/user|/health" "GET /api/v1/users/1|/api/v1/users/1|/api/v1/users/1"; do
        IFS='|' read -r label gw_path nginx_path <<<"$what"
        cg_env=("${gw_env[@]}" PORT="$cg_gw_port" METRICS_PORT="$(free_port)")
        g=$(per_request gw "http://127.0.0.1:$cg_gw_port$gw_path" -H "Authorization: Bearer $token" -- "$bin/gateway")
        cg_env=(PATH="$PATH")
        n=$(per_request nginx "http://127.0.0.1:$cg_nginx_port$nginx_path" -H "Authorization: Bearer $token" -- "${nginx_cmd[@]}")
        printf '%-34s %12d %12d %7.2fx\n' "$label" "$g" "$n" "$(python3 -c "print($g / $n)")"
    done
fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; msgen $(git rev-parse --short HEAD)"
