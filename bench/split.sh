#!/usr/bin/env bash
# Planning `split --from` on a large monolith: a generated axum + sqlx crate of M
# modules (each its own table, handlers, SQL), about L lines in all, split with
# `--dry-run` (everything planned and diffed, nothing written). Prints wall time and
# peak memory, median of three runs.
# Usage: bash bench/split.sh [LINES] [MODULES]   (default: 50000 50)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-50000}
modules=${2:-50}

cargo build --release --quiet
msgen="$PWD/target/release/msgen"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mono="$work/project/legacy"
mkdir -p "$mono/src" "$mono/migrations"

cat >"$mono/Cargo.toml" <<'EOF'
[package]
name = "big"
version = "0.1.0"
edition = "2021"

[dependencies]
axum = "0.8"
serde = { version = "1", features = ["derive"] }
sqlx = { version = "0.8", default-features = false, features = ["runtime-tokio", "macros", "migrate", "postgres"] }
tokio = { version = "1", features = ["full"] }
EOF

# One handler is about 18 lines; enough of them per module to reach LINES.
per_module=$((lines / modules / 18 + 1))
{
    for ((m = 0; m < modules; m++)); do echo "mod m$m;"; done
    echo
    echo "#[tokio::main]"
    echo "async fn main() -> Result<(), Box<dyn std::error::Error>> {"
    echo "    let url = std::env::var(\"DATABASE_URL\").unwrap_or_else(|_| \"postgres://postgres@127.0.0.1/big\".into());"
    echo "    let pool = sqlx::PgPool::connect(&url).await?;"
    echo "    let app = axum::Router::new()"
    for ((m = 0; m < modules; m++)); do echo "        .nest(\"/api/m$m\", m$m::router())"; done
    echo "        .with_state(pool);"
    echo "    let listener = tokio::net::TcpListener::bind(\"0.0.0.0:3000\").await?;"
    echo "    axum::serve(listener, app).await?;"
    echo "    Ok(())"
    echo "}"
} >"$mono/src/main.rs"
: >"$mono/migrations/0001_init.sql"
for ((m = 0; m < modules; m++)); do
    echo "CREATE TABLE t$m (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, n BIGINT NOT NULL);" >>"$mono/migrations/0001_init.sql"
    {
        echo "use axum::extract::{Path, State};"
        echo "use axum::http::StatusCode;"
        echo "use axum::routing::get;"
        echo "use axum::{Json, Router};"
        echo "use sqlx::PgPool;"
        echo
        echo "pub fn router() -> Router<PgPool> {"
        echo "    Router::new()"
        for ((h = 0; h < per_module; h++)); do echo "        .route(\"/h$h/{id}\", get(h$h))"; done
        echo "}"
        for ((h = 0; h < per_module; h++)); do
            cat <<EOF

/// Handler $h of module $m: reads one row of t$m.
async fn h$h(
    State(db): State<PgPool>,
    Path(id): Path<i64>,
) -> Result<Json<(i64, String, i64)>, StatusCode> {
    let row: Option<(i64, String, i64)> =
        sqlx::query_as("SELECT id, name, n + $h FROM t$m WHERE id = \$1")
            .bind(id)
            .fetch_optional(&db)
            .await
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    match row {
        Some(r) => Ok(Json(r)),
        None => Err(StatusCode::NOT_FOUND),
    }
}
EOF
        done
    } >"$mono/src/m$m.rs"
done
total=$(cat "$mono"/src/*.rs "$mono"/migrations/*.sql | wc -l)

times=()
for run in 1 2 3; do
    start=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$work/rss" "$msgen" -q -C "$work/project" split m0 --from legacy --dry-run >/dev/null
    end=$(date +%s%N)
    times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
printf '%-8s %-8s %-22s %10s %10s\n' lines modules "runs s" "median s" "peak MiB"
printf '%-8d %-8d %-22s %10s %10.1f\n' "$total" "$modules" "${times[*]}" "$median" "$(awk -v k="$(tail -n1 "$work/rss")" 'BEGIN { print k / 1024 }')"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m); msgen $(git rev-parse --short HEAD)"
