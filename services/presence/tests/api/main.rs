//! The presence service over the wire: real presence replicas on port 0 and a real
//! identity service, on NATS (a fresh prefix and bucket per test) and in memory.

mod helpers;

mod events;
mod expiry;
mod ops;
mod reads;
mod scaling;
mod status;
mod watch;
