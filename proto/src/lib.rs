//! Palaver's gRPC contract and the event messages it puts on NATS, generated from the
//! `.proto` files beside this crate. One module per versioned package.

/// The identity service.
pub mod identity {
    pub mod v1 {
        tonic::include_proto!("palaver.identity.v1");
    }
}

/// The presence service.
pub mod presence {
    pub mod v1 {
        tonic::include_proto!("palaver.presence.v1");
    }
}

/// The conversation service.
pub mod conversation {
    pub mod v1 {
        tonic::include_proto!("palaver.conversation.v1");
    }
}

/// Events on NATS.
pub mod events {
    pub mod v1 {
        tonic::include_proto!("palaver.events.v1");
    }
}
