//! The conversation service's rules, over the [`crate::model`] and free of SQL, gRPC
//! and protobuf: input rules in [`validate`], which events a change emits in
//! [`events`], transcripts in [`transcript`], and the deployment's [`Policy`].

pub mod events;
pub mod transcript;
pub mod validate;

use rand::Rng;
use rand::distr::Alphanumeric;

/// A random lowercase id with a prefix, e.g. `c_3k9qvt2x7m0a1b2c3d4e`.
pub fn new_id(prefix: &str, len: usize) -> String {
    let body: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .map(|b| (b as char).to_ascii_lowercase())
        .take(len)
        .collect();
    format!("{prefix}{body}")
}

pub use palaver_kit::clock::Clock;

/// The deployment's defaults, which an app's own limits override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Open conversations a visitor may have at once (default 3).
    pub open_conversations_per_visitor: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            open_conversations_per_visitor: 3,
        }
    }
}
