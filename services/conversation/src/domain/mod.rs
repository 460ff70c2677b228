//! The conversation service's rules, over the [`crate::model`] and free of SQL, gRPC
//! and protobuf: input rules in [`validate`], which events a change emits in
//! [`events`], transcripts in [`transcript`], and the deployment's [`Policy`].

pub mod events;
pub mod transcript;
pub mod validate;

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
