//! The identity repository: one set of portable queries over PostgreSQL or SQLite
//! (see `palaver_kit::db`). Methods speak the domain's words; rows come back as the
//! plain structs kept with their aggregate, and the domain decides what they mean.
//!
//! One file per aggregate: `apps` (and their identity keys), `members`, `consent`
//! requests, `grants` and their refresh tokens, `visitors` and their sessions,
//! `operators` (login links and personal access tokens), and `signing_keys`.

mod apps;
mod consent;
mod grants;
mod members;
mod operators;
mod signing_keys;
mod visitors;

use palaver_kit::db::{Database, Migrations, is_unique_violation};
use palaver_kit::{Error, ErrorCode};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

pub use apps::{AppRow, IdentityKeyRow};
pub use consent::{ConsentRow, NewGrant};
pub use grants::{GrantRow, RefreshRow};
pub use members::MemberRow;
pub use operators::{LoginLinkRow, PatRow};
pub use signing_keys::SigningKeyRow;
pub use visitors::NewVisitorSession;

/// The embedded migrations (the same portable SQL for both backends).
pub fn migrations() -> Migrations {
    Migrations {
        postgres: sqlx::migrate!("./migrations"),
        sqlite: sqlx::migrate!("./migrations"),
    }
}

/// Turns a database error into an API error: unique violations are conflicts, the rest
/// is logged with its cause and reported as internal.
fn db_error(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |error| {
        if is_unique_violation(&error) {
            Error::new(ErrorCode::Conflict, format!("{what} already exists"))
        } else {
            Error::internal(&error)
        }
    }
}

/// The identity repository.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Store { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    async fn begin(&self) -> Result<Transaction<'static, Any>, Error> {
        self.db
            .pool()
            .begin()
            .await
            .map_err(|e| Error::internal(&e))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .fetch_one(self.db.pool())
            .await
            .map(|_: AnyRow| ())
    }
}
