//! Every service's database pool: opened with timeouts, the database created if it
//! is missing (PostgreSQL, SQLite) and the service's migrations applied at start-up,
//! so a fresh database needs no extra tool; then a readiness check and the pool's
//! gauges. A service's own `db.rs` names its pool type and its migrations.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use std::time::Duration;

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use anyhow::Context as _;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use sqlx::migrate::Migrator;

/// How long a request waits for a connection of the pool before it fails.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to PostgreSQL at `url` (retrying while the server starts up), creates
/// the database if it is missing, and applies `migrations`.
#[cfg(feature = "postgres")]
pub async fn connect_postgres(
    url: &str,
    max_connections: u32,
    migrations: Migrator,
) -> anyhow::Result<sqlx::PgPool> {
    crate::query_spans::database("postgresql");
    let mut attempt = 0;
    let pool = loop {
        attempt += 1;
        match try_postgres(url, max_connections).await {
            Ok(pool) => break pool,
            Err(err) if attempt < 10 => {
                tracing::warn!(attempt, "database not reachable yet: {err:#}");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            Err(err) => return Err(err),
        }
    };
    migrations.run(&pool).await.context("applying migrations")?;
    Ok(pool)
}

#[cfg(feature = "postgres")]
async fn try_postgres(url: &str, max_connections: u32) -> anyhow::Result<sqlx::PgPool> {
    use sqlx::migrate::MigrateDatabase as _;

    // Creating the database is a convenience for local runs; where the role may not
    // create databases (most managed setups) it already exists.
    if !sqlx::Postgres::database_exists(url).await.unwrap_or(true) {
        sqlx::Postgres::create_database(url)
            .await
            .context("creating the database")?;
    }
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))
}

/// The URL without its password, for messages.
#[cfg(feature = "postgres")]
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Opens the SQLite database at `url` (creating the file and its directory), in
/// WAL mode with a busy timeout, and applies `migrations`.
#[cfg(feature = "sqlite")]
pub async fn connect_sqlite(
    url: &str,
    max_connections: u32,
    migrations: Migrator,
) -> anyhow::Result<sqlx::SqlitePool> {
    use std::str::FromStr as _;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    crate::query_spans::database("sqlite");
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("DATABASE_URL {url:?} is not a SQLite URL"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    if let Some(dir) = options.get_filename().parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    migrate_sqlite(&options, &migrations).await?;
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open the SQLite database {url}"))
}

/// Applies the migrations on a connection of their own with foreign keys off, as
/// SQLite's procedure for changing a table asks (a new table, the rows copied, the
/// old one dropped and replaced: with foreign keys on, dropping it would delete the
/// rows that point at it). sqlx runs each migration in a transaction, where the
/// setting cannot change, so it is set on the connection; the keys are checked
/// once the migrations ran.
#[cfg(feature = "sqlite")]
async fn migrate_sqlite(
    options: &sqlx::sqlite::SqliteConnectOptions,
    migrations: &Migrator,
) -> anyhow::Result<()> {
    use sqlx::{ConnectOptions as _, Connection as _};

    let mut conn = options
        .clone()
        .foreign_keys(false)
        .connect()
        .await
        .context("opening the SQLite database to migrate it")?;
    migrations
        .run(&mut conn)
        .await
        .context("applying migrations")?;
    let broken = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .context("checking foreign keys after the migrations")?;
    if !broken.is_empty() {
        anyhow::bail!(
            "{} row(s) point at rows that do not exist after the migrations (PRAGMA foreign_key_check)",
            broken.len()
        );
    }
    conn.close()
        .await
        .context("closing the migration connection")?;
    Ok(())
}

/// Proves the database answers (the readiness check): a round trip on a
/// connection of the pool.
pub async fn ping<DB: sqlx::Database>(db: &sqlx::Pool<DB>) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;

    db.acquire().await?.ping().await
}

/// The pool's connections at every `/metrics` scrape.
pub fn register_metrics<DB: sqlx::Database>(db: &sqlx::Pool<DB>) {
    let pool = db.clone();
    crate::metrics::gauge(
        "db_pool_connections",
        "Connections of the database pool, by state.",
        move || {
            let idle = pool.num_idle() as f64;
            let all = f64::from(pool.size());
            vec![
                (vec![("state", "idle".to_string())], idle),
                (vec![("state", "in_use".to_string())], all - idle),
            ]
        },
    );
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/blog"),
            "postgres://app:***@db:5432/blog"
        );
        assert_eq!(
            redact("postgres://app:p@ss@db/blog"),
            "postgres://app:***@db/blog"
        );
        assert_eq!(redact("postgres://db/blog"), "postgres://db/blog");
    }
}
