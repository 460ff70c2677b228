//! Domain values to proto messages and back: apps, members, consent, permissions, chat
//! endpoints, operator sessions and signing keys.

use palaver_proto::identity::v1 as pb;

use crate::domain::apps::{App, Limits, Webhook};
use crate::domain::consent::{ConsentRequest, Permission, PermissionStatus, PermissionToken};
use crate::domain::keys::PublicKey;
use crate::domain::members::Member;
use crate::domain::operators::{OperatorSession, PersonalAccessToken};
use crate::domain::visitors::ChatEndpoint;

pub(super) fn timestamp(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

pub(super) fn limits_from(pb: Option<pb::Limits>) -> Limits {
    pb.map(|l| Limits {
        sessions_per_ip_per_minute: l.sessions_per_ip_per_minute,
        messages_per_second: l.messages_per_second,
        message_burst: l.message_burst,
        offline_messages_per_ip_per_hour: l.offline_messages_per_ip_per_hour,
        open_conversations_per_visitor: l.open_conversations_per_visitor,
    })
    .unwrap_or_default()
}

pub(super) fn app_to(app: App) -> pb::App {
    pb::App {
        app_id: app.app_id,
        name: app.name,
        origins: app.origins,
        privacy_url: app.privacy_url,
        logo_url: app.logo_url,
        return_urls: app.return_urls,
        retention_days: app.retention_days,
        webhook_url: app.webhook_url,
        webhook_events: app.webhook_events,
        limits: Some(pb::Limits {
            sessions_per_ip_per_minute: app.limits.sessions_per_ip_per_minute,
            messages_per_second: app.limits.messages_per_second,
            message_burst: app.limits.message_burst,
            offline_messages_per_ip_per_hour: app.limits.offline_messages_per_ip_per_hour,
            open_conversations_per_visitor: app.limits.open_conversations_per_visitor,
        }),
        identity_key_ids: app.identity_key_ids,
        created_at: timestamp(app.created_at),
        updated_at: timestamp(app.updated_at),
    }
}

pub(super) fn member_to(member: Member) -> pb::Member {
    pb::Member {
        app_id: member.app_id,
        member_id: member.member_id,
        external_id: member.external_id,
        display_name: member.display_name,
        email: member.email,
        endpoint: member.endpoint.unwrap_or_default(),
        created_at: timestamp(member.created_at),
        updated_at: timestamp(member.updated_at),
    }
}

pub(super) fn webhook_to(webhook: Webhook) -> pb::Webhook {
    pb::Webhook {
        url: webhook.url,
        events: webhook.events,
        secret: webhook.secret,
    }
}

pub(super) fn consent_to(request: ConsentRequest) -> pb::ConsentRequest {
    pb::ConsentRequest {
        request: request.request,
        expires_at: timestamp(request.expires_at),
        app_name: request.app_name,
        app_logo_url: request.app_logo_url,
        privacy_url: request.privacy_url,
        member_display_name: request.member_display_name,
        scope: crate::domain::consent::SCOPE.to_owned(),
        return_url: request.return_url,
        csrf_token: request.csrf_token,
        permission_expires_at: timestamp(request.permission_expires_at),
    }
}

pub(super) fn token_to(token: PermissionToken) -> pb::PermissionTokenResponse {
    pb::PermissionTokenResponse {
        access_token: token.access_token,
        token_type: "Bearer".to_owned(),
        expires_in: token.expires_in,
        refresh_token: token.refresh_token,
        scope: crate::domain::consent::SCOPE.to_owned(),
        endpoint: token.endpoint,
        external_id: token.external_id,
    }
}

pub(super) fn permission_to(permission: Permission) -> pb::Permission {
    let status = match permission.status {
        PermissionStatus::None => pb::PermissionStatus::None,
        PermissionStatus::Valid => pb::PermissionStatus::Valid,
        PermissionStatus::Expired => pb::PermissionStatus::Expired,
        PermissionStatus::Revoked => pb::PermissionStatus::Revoked,
    };
    pb::Permission {
        status: status as i32,
        expires_at: permission.expires_at.and_then(timestamp),
        endpoint: permission.endpoint.unwrap_or_default(),
    }
}

pub(super) fn endpoint_to(endpoint: ChatEndpoint) -> pb::ChatEndpoint {
    pb::ChatEndpoint {
        endpoint: endpoint.endpoint,
        app_id: endpoint.app_id,
        member_id: endpoint.member_id,
        external_id: endpoint.external_id,
        display_name: endpoint.display_name,
        open: endpoint.open,
    }
}

pub(super) fn operator_session_to(session: OperatorSession) -> pb::OperatorSession {
    pb::OperatorSession {
        access_token: session.access_token,
        expires_in: session.expires_in,
        member: Some(member_to(session.member)),
    }
}

pub(super) fn pat_to(pat: PersonalAccessToken) -> pb::PersonalAccessToken {
    pb::PersonalAccessToken {
        id: pat.id,
        name: pat.name,
        created_at: timestamp(pat.created_at),
        last_used_at: pat.last_used_at.and_then(timestamp),
    }
}

pub(super) fn jwk_to(key: PublicKey) -> pb::Jwk {
    pb::Jwk {
        kid: key.kid,
        kty: "OKP".to_owned(),
        crv: "Ed25519".to_owned(),
        x: key.x,
        alg: "EdDSA".to_owned(),
        r#use: "sig".to_owned(),
    }
}
