//! The identity gRPC server: proto messages in, domain calls, proto messages out.
//!
//! `convert` turns domain values into proto messages (and the few proto inputs into domain
//! values); `server` is the tonic service, one handler per RPC, built on those.

mod convert;
mod server;

pub use server::IdentityServer;
