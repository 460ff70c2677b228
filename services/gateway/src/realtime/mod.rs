//! What the WebSockets of a gateway process share beyond any one connection: the
//! fan-out of bus events ([`fanout`]: one subscription per subject, shared by every
//! socket watching it), the operator devices ([`devices`]: one presence device per
//! operator socket, all heartbeated to presence in one batch) and the open sockets as
//! shutdown sees them ([`sockets`]: told to close, and waited for).

pub mod devices;
pub mod fanout;
pub mod sockets;
