//! Which store a URL names, decided once at the edge: every command and
//! stage then opens connections from the parsed value, so a URL is never
//! re-read (or misread) further in, and a bad one fails before any work.

use super::{PgStore, SqliteStore, Store, StoreError};

/// The backend a store URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// `sqlite://PATH`: one file.
    SqliteFile(String),
    /// `sqlite::memory:`: private to one connection (tests, fuzzing).
    SqliteMemory,
    /// `postgres://…` or `postgresql://…`, handed to the client as given.
    Postgres,
}

/// A store URL, parsed; it keeps the text it was given, which errors and
/// child processes repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreUrl {
    url: String,
    kind: StoreKind,
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let kind = if let Some(path) = url.strip_prefix("sqlite://") {
            // SQLite reads an empty path as a private temporary database: every
            // election would then be "unknown", which hides the real mistake.
            if path.is_empty() {
                return Err(StoreError::UnsupportedUrl(url.to_string()));
            }
            StoreKind::SqliteFile(path.to_string())
        } else if url == "sqlite::memory:" {
            StoreKind::SqliteMemory
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            StoreKind::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        Ok(StoreUrl {
            url: url.to_string(),
            kind,
        })
    }

    pub fn kind(&self) -> &StoreKind {
        &self.kind
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Opens a connection, creating the schema if needed. Each stage opens
    /// its own: a connection serves one caller at a time.
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match &self.kind {
            StoreKind::SqliteFile(path) => Box::new(SqliteStore::open(path)?),
            StoreKind::SqliteMemory => Box::new(SqliteStore::open(":memory:")?),
            StoreKind::Postgres => Box::new(PgStore::open(&self.url)?),
        })
    }

    /// Opens an existing store for reading only (`results`, `audit`):
    /// nothing is created, migrated or written. A SQLite file that does not
    /// exist is an error here, not a new empty database; a private
    /// in-memory one would always be empty, so it is refused.
    pub fn open_read_only(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match &self.kind {
            StoreKind::SqliteFile(path) => Box::new(SqliteStore::open_read_only(path)?),
            StoreKind::SqliteMemory => return Err(StoreError::UnsupportedUrl(self.url.clone())),
            StoreKind::Postgres => Box::new(PgStore::open_read_only(&self.url)?),
        })
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}
