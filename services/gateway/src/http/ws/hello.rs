//! The first frame of a socket and who may say it: `hello` with a visitor session token
//! or an operator access token, verified locally, or with an app's id and no token (a
//! page watching presence); then the app must exist and allow the socket's origin.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt;
use futures::stream::SplitStream;
use palaver_kit::tokens::{Claims, TokenKind};
use palaver_kit::{Error, ErrorCode};
use palaver_proto::identity::v1 as idpb;

use super::frames::{ClientFrame, ServerFrame, You};
use super::writer::Outgoing;
use crate::clients::call;
use crate::domain::limits::Limits;
use crate::domain::origins;
use crate::http::model::overrides;
use crate::state::AppState;

/// How long a new socket has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What a socket is, by its hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    Visitor,
    Operator,
    /// A page watching presence, without a token.
    Watcher,
}

impl SocketKind {
    /// The kind's name, as `welcome` and the traces say it.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketKind::Visitor => "visitor",
            SocketKind::Operator => "operator",
            SocketKind::Watcher => "watcher",
        }
    }
}

/// Who said hello.
pub struct Party {
    pub kind: SocketKind,
    pub app: String,
    /// The token's claims; a watcher has none.
    pub claims: Option<Claims>,
    /// The language of presence frames' `status_text`.
    pub lang: String,
}

impl Party {
    /// Who the welcome says the socket belongs to.
    pub fn you(&self) -> You {
        You {
            kind: self.kind.as_str(),
            app_id: self.app.clone(),
            id: self.claims.as_ref().map(|claims| claims.sub.clone()),
            display_name: self.claims.as_ref().map(|claims| claims.name.clone()),
            verified: self.claims.as_ref().is_some_and(|claims| claims.verified),
        }
    }
}

/// Reads the first frame: who says hello, or why the socket is refused (`None`: it
/// closed without a word).
async fn read_hello(
    state: &AppState,
    stream: &mut SplitStream<WebSocket>,
) -> Option<Result<Party, Error>> {
    let first = match tokio::time::timeout(HELLO_TIMEOUT, next_text(stream)).await {
        Ok(Some(Ok(text))) => text,
        Ok(Some(Err(error))) => return Some(Err(error)),
        Ok(None) => return None,
        Err(_) => {
            return Some(Err(Error::new(
                ErrorCode::Unauthenticated,
                "no hello in time",
            )));
        }
    };
    let Ok(ClientFrame::Hello {
        token,
        app_id,
        lang,
    }) = serde_json::from_str::<ClientFrame>(&first)
    else {
        return Some(Err(Error::invalid(
            "type",
            "the first frame must be {\"type\":\"hello\",\"token\":…}, or {\"type\":\"hello\",\"app_id\":…} to only watch presence",
        )));
    };
    let lang = lang.unwrap_or_default();
    Some(match (token, app_id) {
        (Some(token), None) => state.verifier().verify(&token).await.map(|claims| Party {
            kind: match claims.kind {
                TokenKind::Visitor => SocketKind::Visitor,
                TokenKind::Operator => SocketKind::Operator,
            },
            app: claims.app.clone(),
            claims: Some(claims),
            lang,
        }),
        (None, Some(app)) => Ok(Party {
            kind: SocketKind::Watcher,
            app,
            claims: None,
            lang,
        }),
        _ => Err(Error::invalid(
            "hello",
            "give either a token, or an app_id to only watch presence",
        )),
    })
}

/// Waits for `hello`, checks the token and the origin; who said it and the app's
/// limits, or `None` when the socket is refused (it was told why).
pub async fn hello(
    state: &AppState,
    stream: &mut SplitStream<WebSocket>,
    out: &mut Outgoing,
    origin: Option<String>,
) -> Option<(Party, Limits)> {
    let admitted = match read_hello(state, stream).await? {
        Ok(party) => admit(state, party, origin.as_deref()).await,
        Err(error) => Err(error),
    };
    match admitted {
        Ok(admitted) => Some(admitted),
        Err(error) => {
            let _ = out.send(&ServerFrame::of_error(&error, None)).await;
            None
        }
    }
}

/// Checks that the party's app exists and allows the socket's origin; answers the
/// app's limits.
async fn admit(
    state: &AppState,
    party: Party,
    origin: Option<&str>,
) -> Result<(Party, Limits), Error> {
    let app = call(state.identity().get_app(idpb::GetAppRequest {
        app_id: party.app.clone(),
    }))
    .await?;
    check_origin(state, party.kind, origin, &app.origins)?;
    let limits = state.limits_for(&overrides(app.limits));
    Ok((party, limits))
}

/// A visitor's or a watcher's socket comes from one of the app's origins or the
/// gateway's own (the widget's frame page); an operator's from none (a native client),
/// the gateway's own (the console) or one of the app's.
fn check_origin(
    state: &AppState,
    kind: SocketKind,
    origin: Option<&str>,
    allowed: &[String],
) -> Result<(), Error> {
    let ok = match origin {
        None => kind == SocketKind::Operator,
        Some(origin) => origins::canonical(origin)
            .is_some_and(|o| o == state.public_origin() || origins::is_allowed(&o, allowed)),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::OriginNotAllowed,
            match origin {
                None => format!(
                    "a {}'s WebSocket must come from one of the app's web pages",
                    kind.as_str()
                ),
                Some(origin) => format!("the origin {origin} is not one of the app's origins"),
            },
        ))
    }
}

/// The next text frame; `None` when the socket closed. Binary frames are refused.
async fn next_text(stream: &mut SplitStream<WebSocket>) -> Option<Result<String, Error>> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(Ok(text.as_str().to_owned())),
            Ok(Message::Binary(_)) => {
                return Some(Err(Error::invalid("frame", "frames are JSON text")));
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => return None,
        }
    }
}
