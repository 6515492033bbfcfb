#!/usr/bin/env bash
# Build cost of the generated workspace, against a floor, in one run:
#  - the floor: a minimal axum + sqlx (PostgreSQL) + tokio "hello world" on the same
#    dependency versions the generated workspace pins, cold, in its own empty target
#    directory. It keeps sqlx's `macros` (on by default in sqlx, and what a hello
#    world reaches for: `query!`, `#[derive(FromRow)]`); the generated workspace
#    does without them;
#  - a cold `cargo build` of the built-in example (or of the services.toml given) in
#    an empty target directory, with
#    the number of crates compiled and the dependencies present in more than one
#    version; the ratio to the floor is printed, and (debug) the ratio to the same
#    floor built with the workspace's profile (line tables only);
#  - an incremental rebuild after a one-line edit of a handler;
#  - where the compiler time above the floor goes (bench/breakdown.py, from both
#    cold builds' `--timings` reports).
# Both cold builds run after `cargo fetch`, so the timings are builds alone.
# Usage: bash bench/build.sh [debug|release] [SERVICES_TOML]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
profile=${1:-debug}
config=${2:-}
[ -z "$config" ] || config=$(realpath "$config")
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=()
[ "$profile" = release ] && flags+=(--release)
now() { date +%s.%N; }

# The floor.
mkdir -p "$work/floor/src"
cat > "$work/floor/Cargo.toml" <<'TOML'
[package]
name = "floor"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
axum = "0.8"
serde = { version = "1", features = ["derive"] }
sqlx = { version = "0.8", default-features = false, features = ["runtime-tokio", "macros", "migrate", "chrono", "postgres"] }
tokio = { version = "1", features = ["macros", "rt-multi-thread", "signal", "net", "time", "sync"] }
TOML
cat > "$work/floor/src/main.rs" <<'RUST'
use axum::{extract::State, routing::get, Json, Router};
use sqlx::postgres::PgPoolOptions;

#[derive(serde::Serialize, sqlx::FromRow)]
struct Row {
    id: i64,
}

async fn one(State(db): State<sqlx::PgPool>) -> Json<Vec<Row>> {
    Json(sqlx::query_as("SELECT 1::bigint AS id").fetch_all(&db).await.unwrap_or_default())
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL").unwrap_or_default();
    let db = PgPoolOptions::new().connect_lazy(&url).expect("a database URL");
    let app = Router::new().route("/", get(one)).with_state(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
RUST
(cd "$work/floor" && cargo fetch --quiet)
start=$(now)
(cd "$work/floor" && CARGO_TARGET_DIR="$work/floor-target" cargo build "${flags[@]}" --timings 2>"$work/floor.log")
floor=$(echo "$(now) - $start" | bc)
floor_crates=$(grep -c '^ *Compiling ' "$work/floor.log" || true)
# The same floor with the generated workspace's debug profile (line tables only),
# so the ratio can be read both against cargo's defaults and like for like.
if [ "$profile" = debug ]; then
    start=$(now)
    (cd "$work/floor" && CARGO_PROFILE_DEV_DEBUG=line-tables-only CARGO_TARGET_DIR="$work/floor-lt-target" \
        cargo build 2>/dev/null)
    floor_lt=$(echo "$(now) - $start" | bc)
fi

# The built-in example, or the project of the services.toml given.
if [ -n "$config" ]; then
    target/release/msgen -q -C "$work" new blogsys --config "$config" --yes
    what="the project of $(basename "$config")"
else
    target/release/msgen -q -C "$work" new blogsys --yes
    what="the built-in example"
fi
cd "$work/blogsys"
cargo fetch --quiet
start=$(now)
CARGO_TARGET_DIR="$work/target" cargo build "${flags[@]}" --timings 2>"$work/build.log"
cold=$(echo "$(now) - $start" | bc)
crates=$(grep -c '^ *Compiling ' "$work/build.log" || true)
members=$(grep -c '^ *Compiling .* (/' "$work/build.log" || true)
# Crates present in more than one *version* (`cargo tree -d` also repeats a crate
# built with two feature sets).
dups=$(cargo tree -e normal -d --depth 0 2>/dev/null | grep -E '^[a-z0-9_-]+ v' | sort -u \
    | awk '{n[$1]++; v[$1]=v[$1] " " $2} END {for (k in n) if (n[k] > 1) printf "%s (%s) ", k, substr(v[k], 2)}')

# One line of a handler changed, as a developer's edit does.
# The built-in example's post handler, or the first resource handler of another project.
handler=services/blog/src/handlers/post.rs
[ -f "$handler" ] || handler=$(find . -path '*/src/handlers/*.rs' ! -name mod.rs \
    ! -name health.rs ! -path './.*' ! -path './target/*' | sort | head -1)
echo '// edited' >> "$handler"
start=$(now)
CARGO_TARGET_DIR="$work/target" cargo build "${flags[@]}" 2>"$work/incremental.log"
incremental=$(echo "$(now) - $start" | bc)
rebuilt=$(grep -c '^ *Compiling ' "$work/incremental.log" || true)

printf 'floor (axum + sqlx/PostgreSQL hello world), cold %s build: %.1f s, %s crates\n' "$profile" "$floor" "$floor_crates"
printf 'cold cargo build (%s) of %s: %.1f s, %s crates compiled (%s of them the workspace'"'"'s): %.2fx the floor\n' \
    "$profile" "$what" "$cold" "$crates" "$members" "$(echo "$cold / $floor" | bc -l)"
if [ -n "${floor_lt:-}" ]; then
    printf 'floor with line tables only (the generated workspace'"'"'s debug profile): %.1f s: %.2fx it\n' \
        "$floor_lt" "$(echo "$cold / $floor_lt" | bc -l)"
fi
printf 'incremental rebuild after a one-line edit of %s: %.1f s (%s crate(s) recompiled)\n' "$handler" "$incremental" "$rebuilt"
printf 'dependencies in more than one version: %s\n' "${dups:-none}"
python3 "$repo/bench/breakdown.py" "$work/floor-target" "$work/target" . 14
printf 'machine: %s cores, %s; msgen %s\n' "$(nproc)" "$(free -g | awk '/Mem:/ {print $2 " GiB"}')" "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
