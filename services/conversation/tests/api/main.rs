//! The conversation service over the wire: a tonic client against the real server on
//! port 0, beside a real identity service, on a fresh PostgreSQL database and on SQLite,
//! with the in-process bus or a NATS JetStream server of the test's own.

mod helpers;

mod conversations;
mod erasure;
mod events;
mod members;
mod messages;
mod nats;
mod service;
mod store;
