//! SQL pools on PostgreSQL (in a cluster) or SQLite (the embedded default), through
//! sqlx's `Any` driver, so each service keeps one repository and one set of queries.
//!
//! Queries use `$1`-style placeholders, which both backends accept, and portable types
//! only (`BIGINT` integers, `TEXT`, `BLOB`/`BYTEA`); times are Unix seconds or
//! milliseconds in `BIGINT` columns. The schema differs per backend only in its
//! migrations, which each service embeds as one [`Migrations`] pair.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

/// Which SQL engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A service's embedded migrations, one directory per backend.
pub struct Migrations {
    pub postgres: Migrator,
    pub sqlite: Migrator,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL (use postgres://… or sqlite://…)")]
    UnsupportedUrl,
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// A connection pool and the backend behind it.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

impl Database {
    /// Connects to `postgres://…` or `sqlite://…`. SQLite runs in WAL mode with a busy
    /// timeout, so concurrent writers wait instead of failing.
    pub async fn connect(url: &str) -> Result<Database, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(DbError::UnsupportedUrl);
        };
        let options: AnyConnectOptions = url.parse().map_err(DbError::Connect)?;
        let pool_options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let pool = match backend {
            Backend::Postgres => pool_options.max_connections(32),
            Backend::Sqlite => pool_options.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                        .await?;
                    Ok(())
                })
            }),
        }
        .connect_with(options)
        .await
        .map_err(DbError::Connect)?;
        Ok(Database { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs the migrations for this backend that have not run yet.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DbError> {
        let migrator = match self.backend {
            Backend::Postgres => &migrations.postgres,
            Backend::Sqlite => &migrations.sqlite,
        };
        migrator.run(&self.pool).await.map_err(DbError::Migrate)
    }
}

/// `$first, …` for `count` parameters: an `IN` list or a row of a multi-row `VALUES`.
///
/// Not sqlx's `QueryBuilder`: over the `Any` driver it writes `?` placeholders
/// (`AnyArguments` keeps `Arguments::format_placeholder`'s default), which PostgreSQL
/// refuses, while `$n` serves both backends.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when a query failed on a unique constraint (which callers turn into 409).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}
