//! The writes a transaction makes once it has read what it needs. On PostgreSQL they go
//! out as one statement, each write a data-modifying `WITH` part, so a batch of messages
//! costs one round trip however many tables it changes; on SQLite, which runs in this
//! process and has no such parts, they run one by one.

use palaver_kit::db::Backend;
use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments as _, Encode, Transaction, Type};

/// The arguments of a statement, numbered in the order they are bound.
#[derive(Default)]
pub(super) struct Arguments<'q>(AnyArguments<'q>);

impl<'q> Arguments<'q> {
    /// Adds `value`; answers its placeholder (`$n`).
    pub(super) fn bind<T>(&mut self, value: T) -> String
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        // Values of the types sqlx's `Any` knows always encode.
        self.0
            .add(value)
            .expect("a value of a type Any knows encodes");
        format!("${}", self.0.len())
    }
}

/// One write: its SQL, its own arguments (SQLite) and whether its rows are counted.
struct Write<'q> {
    sql: String,
    arguments: Option<Arguments<'q>>,
    counted: bool,
}

/// The writes of a transaction, in the order they are added.
pub(super) struct Writes<'q> {
    /// On PostgreSQL, the one set of arguments every write binds into.
    shared: Option<Arguments<'q>>,
    writes: Vec<Write<'q>>,
}

impl<'q> Writes<'q> {
    pub(super) fn new(backend: Backend) -> Self {
        Writes {
            shared: (backend == Backend::Postgres).then(Arguments::default),
            writes: Vec::new(),
        }
    }

    /// Adds the write that `build` makes, binding its values with [`Arguments::bind`];
    /// with `counted`, the rows it changes count in what [`Writes::execute`] answers.
    pub(super) fn add(&mut self, counted: bool, build: impl FnOnce(&mut Arguments<'q>) -> String) {
        let write = match &mut self.shared {
            Some(shared) => Write {
                sql: build(shared),
                arguments: None,
                counted,
            },
            None => {
                let mut arguments = Arguments::default();
                Write {
                    sql: build(&mut arguments),
                    arguments: Some(arguments),
                    counted,
                }
            }
        };
        self.writes.push(write);
    }

    /// Runs the writes in `tx`; answers how many rows the counted ones changed.
    pub(super) async fn execute(self, tx: &mut Transaction<'_, Any>) -> Result<u64, sqlx::Error> {
        let Some(shared) = self.shared else {
            let mut changed = 0;
            for write in self.writes {
                let arguments = write.arguments.unwrap_or_default().0;
                let done = sqlx::query_with(&write.sql, arguments)
                    .execute(&mut **tx)
                    .await?;
                if write.counted {
                    changed += done.rows_affected();
                }
            }
            return Ok(changed);
        };
        if self.writes.is_empty() {
            return Ok(0);
        }
        let parts: Vec<String> = self
            .writes
            .iter()
            .enumerate()
            .map(|(n, write)| format!("w{n} AS ({} RETURNING 1)", write.sql))
            .collect();
        let counts: String = self
            .writes
            .iter()
            .enumerate()
            .filter(|(_, write)| write.counted)
            .map(|(n, _)| format!(" + (SELECT COUNT(*) FROM w{n})"))
            .collect();
        let sql = format!("WITH {} SELECT CAST(0 AS BIGINT){counts}", parts.join(", "));
        let changed: i64 = sqlx::query_scalar_with(&sql, shared.0)
            .fetch_one(&mut **tx)
            .await?;
        Ok(u64::try_from(changed).unwrap_or_default())
    }
}
