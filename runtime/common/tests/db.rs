//! `common::db` against real databases: the machine's PostgreSQL (a database of
//! this test's own, created because it is missing) and a SQLite file in a
//! directory that does not exist yet. Without PostgreSQL the test fails under CI
//! (`CI` set) and is skipped, loudly, elsewhere.

#![cfg(all(feature = "postgres", feature = "sqlite"))]

use std::path::Path;

use msgen_runtime_common::{db, metrics};
use sqlx::migrate::Migrator;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

async fn migrations() -> Migrator {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrations");
    Migrator::new(dir).await.unwrap()
}

fn postgres_is_up() -> bool {
    if std::net::TcpStream::connect("127.0.0.1:5432").is_ok() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        !ci,
        "PostgreSQL is not listening on 127.0.0.1:5432 (CI needs it)"
    );
    eprintln!("SKIPPED: PostgreSQL is not listening on 127.0.0.1:5432");
    false
}

#[tokio::test]
async fn a_missing_postgres_database_is_created_and_migrated() {
    if !postgres_is_up() {
        return;
    }
    let name = format!("msgen_runtime_db_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&format!("{SERVER}/postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await
        .unwrap();

    let url = format!("{SERVER}/{name}");
    let pool = db::connect_postgres(&url, 2, migrations().await)
        .await
        .unwrap();
    sqlx::query("INSERT INTO authors (id, name) VALUES (1, 'Ada')")
        .execute(&pool)
        .await
        .unwrap();
    db::ping(&pool).await.unwrap();
    // A second start finds the database and its migrations applied.
    let again = db::connect_postgres(&url, 2, migrations().await)
        .await
        .unwrap();
    let (authors,): (i64,) = sqlx::query_as("SELECT count(*) FROM authors")
        .fetch_one(&again)
        .await
        .unwrap();
    assert_eq!(authors, 1);
    // A dangling reference is a validation error that names its column.
    let orphan = sqlx::query("INSERT INTO posts (id, author_id) VALUES (1, 99)")
        .execute(&pool)
        .await
        .unwrap_err();
    match msgen_runtime_common::ApiError::from(orphan) {
        msgen_runtime_common::ApiError::Validation(problems) => assert_eq!(
            problems,
            ["author_id: refers to a record that does not exist"]
        ),
        other => panic!("{other:?}"),
    }
    // PostgreSQL's text cannot hold a NUL character: the caller's mistake, a 400.
    let nul = sqlx::query("SELECT name FROM authors WHERE name = $1")
        .bind("Ada\0")
        .fetch_all(&pool)
        .await
        .unwrap_err();
    match msgen_runtime_common::ApiError::from(nul) {
        msgen_runtime_common::ApiError::Rejected(status, message) => {
            assert_eq!(status, 400);
            assert!(message.contains("NUL"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    db::register_metrics(&pool);
    assert!(metrics::render().contains("db_pool_connections{state=\"idle\"}"));

    pool.close().await;
    again.close().await;
    sqlx::query(&format!("DROP DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_sqlite_file_is_created_with_its_directory_and_keeps_its_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data/nested/app.db");
    let url = format!("sqlite://{}", file.display());
    let pool = db::connect_sqlite(&url, 2, migrations().await)
        .await
        .unwrap();
    assert!(file.exists());
    db::ping(&pool).await.unwrap();
    // Foreign keys are on for the pool (off only while migrating).
    let orphan = sqlx::query("INSERT INTO posts (id, author_id) VALUES (1, 99)")
        .execute(&pool)
        .await;
    assert!(orphan.is_err(), "a post without its author was stored");
}
