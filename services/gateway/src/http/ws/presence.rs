//! What a session does for presence: an operator's socket is one presence device of the
//! member, whose status `presence.set` changes; any socket may `presence.watch` chat
//! endpoints of its app and hears each change as a `presence` frame, in the language
//! of its hello.

use palaver_kit::bus::Subject;
use palaver_kit::{Error, ErrorCode};
use palaver_proto::identity::v1 as idpb;
use palaver_proto::presence::v1 as presence;

use super::frames::ServerFrame;
use super::session::{Session, Step};
use super::writer::{Closed, Closing};
use crate::clients::call;
use crate::domain::status::{Status, StatusText};
use crate::http::model::status_of;

/// The most endpoints one `presence.watch` may name.
const MAX_WATCHED_ENDPOINTS: usize = 100;

impl Session {
    /// `presence.set`: the operator's device takes `status`.
    pub(super) async fn presence_set(&mut self, status: &str) -> Step {
        if !self.is_operator() {
            return Step::Reply(operators_only("presence.set"));
        }
        match status.parse::<Status>() {
            Ok(status) => self.set_status(status).await.into(),
            Err(error) => Step::Reply(Error::invalid("status", error.to_string())),
        }
    }

    /// Sets the status of the operator's device, in presence and in this process's
    /// heartbeats.
    pub(super) async fn set_status(&mut self, status: Status) -> Result<(), Error> {
        let Some(device) = self.device.clone() else {
            return Err(operators_only("presence.set"));
        };
        call(
            self.state
                .presence()
                .set_status(presence::SetStatusRequest {
                    device: Some(device.clone()),
                    status: presence::Status::from(status).into(),
                }),
        )
        .await?;
        self.state
            .devices()
            .set(&device, presence::Status::from(status));
        Ok(())
    }

    /// `presence.watch`: the current presence of each open endpoint named, then its
    /// changes; an `error` (`not_found`, with the endpoint as `ref`) for each of the
    /// others.
    pub(super) async fn watch_presence(&mut self, endpoints: Vec<String>) -> Step {
        if endpoints.is_empty() || endpoints.len() > MAX_WATCHED_ENDPOINTS {
            return Step::Reply(Error::invalid(
                "endpoints",
                format!("name 1 to {MAX_WATCHED_ENDPOINTS} chat endpoints"),
            ));
        }
        let resolved = call(self.state.identity().resolve_endpoints(
            idpb::ResolveEndpointsRequest {
                endpoints: endpoints.clone(),
            },
        ))
        .await;
        let open: Vec<idpb::ChatEndpoint> = match resolved {
            Ok(resolved) => resolved
                .endpoints
                .into_iter()
                .filter(|e| e.open && e.app_id == self.app())
                .collect(),
            Err(error) => return Step::Reply(error),
        };
        for endpoint in &endpoints {
            if !open.iter().any(|e| &e.endpoint == endpoint) {
                let error = Error::new(
                    ErrorCode::NotFound,
                    format!("no open chat endpoint {endpoint} in this app"),
                );
                let told = self
                    .out
                    .send(&ServerFrame::of_error(&error, Some(endpoint.clone())))
                    .await;
                if told.is_err() {
                    return Step::Close(Closing::Quietly);
                }
            }
        }
        if open.is_empty() {
            return Step::Continue;
        }
        for endpoint in &open {
            let subject = Subject::presence(self.app(), &endpoint.member_id);
            if let Err(error) = self.watch(subject).await {
                return Step::Reply(error);
            }
        }
        let current = call(
            self.state.presence().batch_get(presence::BatchGetRequest {
                app_id: self.app().to_owned(),
                targets: open
                    .iter()
                    .map(|e| presence::Target {
                        target: Some(presence::target::Target::MemberId(e.member_id.clone())),
                    })
                    .collect(),
            }),
        )
        .await;
        let current = match current {
            Ok(current) => current,
            Err(error) => return Step::Reply(error),
        };
        for member in current.presences {
            if self.on_presence(member).await.is_err() {
                return Step::Close(Closing::Quietly);
            }
        }
        Step::Continue
    }

    /// Sends a member's presence, unless this socket has sent a newer one.
    pub(super) async fn on_presence(
        &mut self,
        member: presence::MemberPresence,
    ) -> Result<(), Closed> {
        let newest = self.revisions.entry(member.member_id.clone()).or_default();
        if member.revision != 0 && member.revision <= *newest {
            return Ok(());
        }
        *newest = member.revision;
        if member.endpoint.is_empty() {
            return Ok(());
        }
        let status = status_of(member.status()).visible();
        self.out
            .send(&ServerFrame::Presence {
                endpoint: member.endpoint,
                status: status.as_str(),
                status_text: status.text(&self.lang),
                accepts_chats: status.accepts_chats(),
            })
            .await
    }
}

fn operators_only(frame: &str) -> Error {
    Error::new(
        ErrorCode::PermissionDenied,
        format!("{frame} is for operators"),
    )
}
