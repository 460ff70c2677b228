//! What the WebSockets of a gateway process share beyond any one connection: the
//! fan-out of bus events ([`fanout`]: one subscription per subject, shared by every
//! socket watching it) and the operator devices ([`devices`]: one presence device per
//! operator socket, all heartbeated to presence in one batch).

pub mod devices;
pub mod fanout;
