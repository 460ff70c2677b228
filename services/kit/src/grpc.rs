//! gRPC plumbing every service shares: [`serve`] runs a tonic server with the standard
//! health-checking service, tracing and graceful shutdown; [`balanced_channel`] gives a
//! client channel that spreads calls over every address a name resolves to (a headless
//! Kubernetes Service), follows the name as it changes, and bounds every call with the
//! channel's deadline.
//!
//! One HTTP/2 connection to a ClusterIP would pin all of a client's traffic to one pod;
//! balancing over the resolved addresses is what lets the services scale out.
//!
//! `server` holds [`serve`]; `balance` the balanced channel and how it follows the name;
//! `deadline` the channel's call deadline. Both ends keep their HTTP/2 connections alive
//! the same way (the constants below).

use std::time::Duration;

mod balance;
mod deadline;
mod server;

pub use balance::{
    BalanceOptions, ChannelError, DEFAULT_CALL_TIMEOUT, GrpcChannel, Resolver, balanced_channel,
    balanced_channel_with, dns_resolver,
};
pub use deadline::Deadline;
pub use server::serve;

/// How often an idle HTTP/2 connection is pinged, and how long a ping may go unanswered
/// before the connection is considered dead.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
