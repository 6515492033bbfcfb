#!/usr/bin/env bash
# Gateway overhead and service throughput, printed as figures:
#  - wrk through the generated gateway (release build) and through nginx proxy_pass
#    with upstream keep-alive, to the same user-service instance, same run, same
#    connection counts: /health and a resource GET;
#  - a resource GET and POST straight to the service, on the local PostgreSQL.
# Needs PostgreSQL on 127.0.0.1:5432 and NATS on 127.0.0.1:4222 (the built-in example
# consumes events). Usage: bash bench/gateway.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
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
env "${common_env[@]}" PORT="$user_port" \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/bench_${run}_user" "$bin/user-service" & pids+=($!)
wait_up "http://127.0.0.1:$auth_port"
wait_up "http://127.0.0.1:$user_port"
env HOST=127.0.0.1 RUST_LOG=error PORT="$gw_port" METRICS_PORT="$(free_port)" JWT_SECRET="$secret" \
    AUTH_SERVICE_URL="http://127.0.0.1:$auth_port" USER_SERVICE_URL="http://127.0.0.1:$user_port" \
    BLOG_SERVICE_URL="http://127.0.0.1:9" "$bin/gateway" & pids+=($!)
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

gw="http://127.0.0.1:$gw_port"
curl -fs -X POST "$gw/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench password"}' >/dev/null
token=$(curl -fs -X POST "$gw/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
curl -fs -X POST "http://127.0.0.1:$user_port/api/v1/users" -H 'content-type: application/json' \
    -d '{"email":"ada@example.com","display_name":"Ada"}' >/dev/null

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"email":"load@example.com","display_name":"Load"}'
wrk.headers["Content-Type"] = "application/json"
LUA

# name url [wrk args...] → "name rps p50 p99 non2xx"
bench() {
    local name=$1 url=$2; shift 2
    local out
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" "$url")
    awk -v name="$name" '
        /Requests\/sec/ { rps = $2 }
        /^ +50%/ { p50 = $2 }
        /^ +99%/ { p99 = $2 }
        /Non-2xx/ { bad = $NF }
        END { printf "%-34s %12s %10s %10s %8s\n", name, rps, p50, p99, (bad == "" ? 0 : bad) }' <<<"$out"
}

printf '%-34s %12s %10s %10s %8s\n' "target ($conns connections, ${secs}s)" "req/s" p50 p99 non-2xx
bench "gateway → /health (user)" "$gw/health/user"
bench "nginx → /health (user)" "http://127.0.0.1:$nginx_port/health"
bench "gateway → GET /api/v1/users/1" "$gw/api/v1/users/1" -H "Authorization: Bearer $token"
bench "nginx → GET /api/v1/users/1" "http://127.0.0.1:$nginx_port/api/v1/users/1"
bench "service GET /api/v1/users/1" "http://127.0.0.1:$user_port/api/v1/users/1"
bench "service POST /api/v1/users" "http://127.0.0.1:$user_port/api/v1/users" -s "$work/post.lua"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; msgen $(git rev-parse --short HEAD)"
