//! The gateway's own logic, free of axum and prost types: abuse limits and the rate
//! limiters that enforce them, allowed origins, the client's IP address behind
//! trusted proxies, and member statuses as visitors see them.

pub mod client_ip;
pub mod limits;
pub mod origins;
pub mod rate_limit;
pub mod status;
