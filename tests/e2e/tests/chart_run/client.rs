//! Driving the gateway as sites, browsers and operator clients do: HTTP with reqwest,
//! the WebSocket with tokio-tungstenite (as `services/gateway/tests/api` does).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long the test waits for a frame the gateway must send: a guard against hanging,
/// not a timing assertion.
const FRAME_GUARD: Duration = Duration::from_secs(30);

/// The JSON body of a response that must have `status`.
pub async fn json_of(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Self {
        const ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
        let mut rng = rand::rng();
        let verifier: String = (0..64)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// A WebSocket client speaking Palaver's JSON frames.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects to `base`'s `/v1/ws`, from a page at `origin` (none: a native client).
    pub async fn connect(base: &str, origin: Option<&str>) -> Ws {
        let url = format!("{}/v1/ws", base.replacen("http://", "ws://", 1));
        let mut request = url.as_str().into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the WebSocket upgrade");
        Ws { stream }
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON frame, which must come.
    pub async fn frame(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(FRAME_GUARD, self.stream.next())
                .await
                .expect("a frame from the gateway");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).unwrap();
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => panic!("the socket closed"),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Skips frames until one of `kind` for which `matches` holds; answers it.
    pub async fn until(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = self.frame().await;
            assert_ne!(frame["type"], "error", "{frame}");
            if frame["type"] == kind && matches(&frame) {
                return frame;
            }
        }
    }

    /// Says hello with `token`; answers the welcome.
    pub async fn hello(&mut self, token: &str) -> Value {
        self.send(json!({"type": "hello", "token": token})).await;
        let welcome = self.frame().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        welcome
    }
}
