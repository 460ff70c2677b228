//! The gateway over HTTP and WebSocket, in front of real identity, presence and
//! conversation services (fresh PostgreSQL databases, a fresh NATS prefix), all on
//! port 0. One test per rule of the public contract.

mod helpers;

mod admin;
mod cms;
mod consent;
mod consent_page;
mod console_api;
mod conversations;
mod operators;
mod presence;
mod service;
mod visitors;
mod webhooks;
mod ws;
mod ws_limits;
mod ws_presence;
