//! Spawns a real identity service on port 0 against a fresh database of each backend
//! (`palaver_identity::testing`, which the services on identity share), and what only
//! identity's own tests ask of it.

pub use palaver_identity::testing::TestIdentity;
use palaver_kit::testing;
pub use palaver_kit::testing::{Pkce, query_param};
use palaver_kit::{Error, ErrorCode};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub async fn spawn(backend: Backend) -> TestIdentity {
    TestIdentity::spawn(match backend {
        Backend::Postgres => testing::postgres().await,
        Backend::Sqlite => testing::sqlite(),
    })
    .await
}

/// The error code a failed call carried.
pub fn code_of<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> ErrorCode {
    Error::from_status(&result.expect_err("the call should fail")).code
}

/// Runs one async test body against each SQL backend.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        palaver_kit::on_each_backend!($name, [postgres: Postgres, sqlite: Sqlite], $body);
    };
}
