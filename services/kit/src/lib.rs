//! What every Palaver service shares.
//!
//! - [`cache`]: answers read from another service, kept briefly.
//! - [`clock`]: wall-clock time that tests may shift.
//! - [`config`]: typed configuration from environment variables.
//! - [`telemetry`]: JSON logs with trace ids, OTLP trace export, W3C trace context over
//!   gRPC metadata and NATS headers.
//! - [`service`]: what every service's process does: its command line, configuration,
//!   telemetry, listeners, and the drain on shutdown.
//! - [`shutdown`]: SIGTERM/SIGINT and a bounded drain.
//! - [`status`]: member statuses, their availability order and proto form.
//! - [`admin`]: the admin HTTP server (`/healthz`, `/readyz`, `/metrics`).
//! - [`error`]: the one table of error codes, for HTTP (problem+json) and gRPC.
//! - [`bus`]: the event bus, on NATS/JetStream or in process.
//! - [`db`]: SQL pools on PostgreSQL or SQLite, and embedded migrations.
//! - [`tokens`]: access-token claims and their verification against the identity JWKS.
//! - [`random`]: random ids and secret strings.
//! - [`grpc`]: gRPC servers (health, tracing) and client channels that balance over
//!   every address a name resolves to, with a deadline on every call.
//! - [`testing`] (feature `testing`): fresh PostgreSQL databases and NATS prefixes for
//!   tests, starting local servers when none is reachable.
//!
//! Every process that links the kit allocates with mimalloc: a service allocates and
//! frees small buffers for every request, frame and event, and glibc's allocator spent
//! a sixth of the conversation service's CPU on them (`cargo bench -p
//! palaver-conversation`: 12,500-12,900 persisted messages/s with mimalloc, 10,400-10,700
//! without).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod admin;
pub mod bus;
pub mod cache;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod random;
pub mod service;
pub mod shutdown;
pub mod status;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;

pub use error::{Error, ErrorCode};
