//! The identity service over the wire: a tonic client against the real server on
//! port 0, on a fresh PostgreSQL database and on SQLite.

mod helpers;

mod apps;
mod consent;
mod members;
mod operators;
mod signing_keys;
mod visitors;
