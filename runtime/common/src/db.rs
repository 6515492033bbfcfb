//! Every service's database pool: opened with timeouts, the database created if it
//! is missing (PostgreSQL, SQLite) and the service's migrations applied at start-up,
//! so a fresh database needs no extra tool; then a readiness check and the pool's
//! gauges. A service's own `db.rs` names its pool type and its migrations, which its
//! `build.rs` embeds in the binary (`migrator` reads them by sqlx's rules).
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

/// A service's migrations as its `build.rs` embeds them: every `*.sql` file of
/// `migrations/`, by file name, with its text.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub type MigrationFiles = &'static [(&'static str, &'static str)];

/// The migrations in `files`, read by the rules of sqlx's own migration directory
/// (`sqlx migrate add` names the files so): `<VERSION>_<DESCRIPTION>.sql`, or
/// `.up.sql` and `.down.sql` for a reversible pair, and `-- no-transaction` as the
/// first line to run one outside a transaction. Each migration's checksum is the
/// one `sqlx migrate run` records, so a database migrated by either accepts the other.
///
/// The files are embedded by the build, not read at start-up, so a service's
/// image needs no `migrations/` beside it; sqlx's `migrate!` macro would do the
/// same but costs every build its compile-time half of sqlx.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub async fn migrator(files: MigrationFiles) -> anyhow::Result<Migrator> {
    let mut migrations = files
        .iter()
        .map(|&(name, sql)| migration(name, sql))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // As sqlx orders a reversible pair: the `up` half first.
    migrations.sort_by_key(|m| (m.version, m.migration_type.is_down_migration()));
    Ok(Migrator::new(Embedded(migrations)).await?)
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
fn migration(name: &str, sql: &'static str) -> anyhow::Result<sqlx::migrate::Migration> {
    use sqlx::migrate::{Migration, MigrationType};

    let (version, rest) = name
        .split_once('_')
        .filter(|(_, rest)| rest.ends_with(".sql"))
        .with_context(|| {
            format!(
                "migrations/{name}: not a migration's name, which is \
                 `<VERSION>_<DESCRIPTION>.sql` (e.g. `20240101000000_create_posts.sql`)"
            )
        })?;
    let version: i64 = version.parse().map_err(|_| {
        anyhow::anyhow!("migrations/{name}: the version before the first `_` is not a whole number")
    })?;
    let kind = MigrationType::from_filename(rest);
    let description = rest.trim_end_matches(kind.suffix()).replace('_', " ");
    let no_tx = sql.starts_with("-- no-transaction");
    #[cfg(not(feature = "sqlx09"))]
    let sql = std::borrow::Cow::Borrowed(sql);
    #[cfg(feature = "sqlx09")]
    let sql = sqlx::SqlSafeStr::into_sql_str(sql);
    Ok(Migration::new(
        version,
        description.into(),
        kind,
        sql,
        no_tx,
    ))
}

/// Migrations already read, handed to `Migrator::new` (sqlx's public way in).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[derive(Debug)]
struct Embedded(Vec<sqlx::migrate::Migration>);

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<'s> sqlx::migrate::MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
                > + Send
                + 's,
        >,
    > {
        Box::pin(async move { Ok(self.0) })
    }
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

    const FILES: MigrationFiles = &[
        ("2_add_index.down.sql", "DROP INDEX posts_title;\n"),
        ("2_add_index.up.sql", "CREATE INDEX posts_title ON posts (title);\n"),
        (
            "1_create_posts.sql",
            "CREATE TABLE posts (\r\n  id BIGSERIAL PRIMARY KEY,\r\n  title TEXT NOT NULL\r\n);\r\n",
        ),
        (
            "3_concurrent_index.sql",
            "-- no-transaction\nCREATE INDEX CONCURRENTLY posts_id ON posts (id);\n",
        ),
    ];

    #[tokio::test]
    async fn embedded_migrations_are_the_ones_sqlx_reads_from_their_directory() {
        let dir = std::env::temp_dir().join(format!("common-migrations-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, sql) in FILES {
            std::fs::write(dir.join(name), sql).unwrap();
        }
        std::fs::write(dir.join("README.md"), "not a migration").unwrap();
        let from_disk = Migrator::new(dir.as_path()).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let embedded = migrator(FILES).await.unwrap();
        let seen = |m: &Migrator| {
            m.iter()
                .map(|m| {
                    (
                        m.version,
                        m.description.to_string(),
                        format!("{:?}", m.migration_type),
                        m.checksum.to_vec(),
                        m.no_tx,
                    )
                })
                .collect::<Vec<_>>()
        };
        let embedded_seen = seen(&embedded);
        // sqlx 0.8 sorts a directory by version only: the same migrations, compared
        // as sets; the order of a reversible pair's halves is checked below.
        let sorted = |mut v: Vec<_>| {
            v.sort();
            v
        };
        assert_eq!(sorted(embedded_seen.clone()), sorted(seen(&from_disk)));
        let versions: Vec<i64> = embedded_seen.iter().map(|m| m.0).collect();
        assert_eq!(versions, [1, 2, 2, 3]);
        assert_eq!(embedded_seen[1].2, "ReversibleUp", "a pair's up half first");
        assert!(embedded_seen.contains(&(
            2,
            "add index".to_string(),
            "ReversibleUp".to_string(),
            from_disk
                .iter()
                .find(|m| m.version == 2 && m.migration_type.is_up_migration())
                .unwrap()
                .checksum
                .to_vec(),
            false,
        )));
        assert!(
            embedded_seen.iter().any(|m| m.0 == 3 && m.4),
            "-- no-transaction is honoured"
        );
    }

    #[tokio::test]
    async fn a_file_not_named_as_a_migration_is_refused_with_its_name() {
        let err = migrator(&[("posts.sql", "")]).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("migrations/posts.sql: not a migration's name"),
            "{err}"
        );
        let err = migrator(&[("first_posts.sql", "")]).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("migrations/first_posts.sql: the version"),
            "{err}"
        );
        let err = migrator(&[("1_posts.txt", "")]).await.unwrap_err();
        assert!(err.to_string().contains("1_posts.txt"), "{err}");
    }
}
