//! The records store: attendance, the audit trail, per-room settings and the webhook outbox, in
//! SQLite (the embedded default, a file created on first start) or PostgreSQL, through one code
//! path (sqlx's `Any` driver) and one schema, migrated at start-up (`server/migrations`).
//!
//! Only the recorder, the webhook sender and the admin API use it; a room never waits on it.

mod queries;
mod settings;
mod writes;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

pub use queries::{
    attendance_csv, AttendanceRow, AuditEvent, BadCursor, Interval, Page, SessionQuery,
    SessionRecord,
};
pub use writes::{Recovered, Write};

/// The schema, versioned in the repository and applied in order at start-up.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database URL must start with sqlite:// or postgres:// (got {0:?})")]
    Scheme(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a stored value is not what this version wrote: {0}")]
    Corrupt(String),
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool of connections to the records database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects (creating a SQLite file and its directory-less schema on first start) and
    /// migrates the schema to this version.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalize(url)?;
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            // SQLite writes one at a time anyway; a few readers serve the API beside the writer.
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Readers do not block the writer, and a writer waits for another
                        // rather than failing at once.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection; pending writes must be done first.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The backend a URL names, and the URL as sqlx wants it: a SQLite file is created when missing.
fn normalize(url: &str) -> Result<(Backend, String), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    if url.starts_with("sqlite:") {
        let url = if url.contains("mode=") {
            url.to_owned()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        return Ok((Backend::Sqlite, url));
    }
    Err(StoreError::Scheme(
        url.split(':').next().unwrap_or_default().to_owned(),
    ))
}

/// The path of a `sqlite://` URL's file, for telling the operator where records are.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Unix milliseconds as stored.
pub(crate) fn ms(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

/// A stored time back as Unix milliseconds.
pub(crate) fn unix_ms(at: i64) -> u64 {
    u64::try_from(at).unwrap_or(0)
}

/// RFC 3339 in UTC, as the admin API and webhooks write times.
pub fn rfc3339(at_ms: u64) -> String {
    let nanos = i128::from(at_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Parses an RFC 3339 time (a query's `from` or `to`) to Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    // Before 1970 nothing was recorded: as a bound it means "from the start".
    Some(u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_url_creates_its_file_and_other_schemes_are_refused() {
        assert_eq!(
            normalize("sqlite://circle.db").unwrap(),
            (Backend::Sqlite, "sqlite://circle.db?mode=rwc".to_owned())
        );
        assert_eq!(
            normalize("sqlite:///var/lib/circle/records.db?mode=ro")
                .unwrap()
                .1,
            "sqlite:///var/lib/circle/records.db?mode=ro"
        );
        assert_eq!(normalize("postgres://u@h/db").unwrap().0, Backend::Postgres);
        assert!(matches!(
            normalize("mysql://x"),
            Err(StoreError::Scheme(s)) if s == "mysql"
        ));
        assert_eq!(
            sqlite_path("sqlite://./circle.db?mode=rwc"),
            Some("./circle.db".into())
        );
    }

    #[test]
    fn times_are_written_and_read_as_rfc3339_utc() {
        let at = 1_764_705_600_123;
        let text = rfc3339(at);
        assert_eq!(text, "2025-12-02T20:00:00.123Z");
        assert_eq!(parse_rfc3339(&text), Some(at));
        assert_eq!(parse_rfc3339("2025-12-02T21:00:00.123+01:00"), Some(at));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
