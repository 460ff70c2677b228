//! `palaver up` as a newcomer meets it: the real binary on port 0 with a fresh data
//! directory, its first screen read for the URLs, and the demo site driven over plain
//! HTTP by a client that keeps cookies and does not follow redirects, as a browser
//! without scripts would. The consent is given on the gateway's own consent page.

mod helpers;

use reqwest::StatusCode;
use serde_json::{Value, json};

use helpers::{ADMIN_TOKEN, Browser, Up, data_dir, status_of};

#[tokio::test]
async fn the_pages_answer_and_the_checkbox_waits_for_consent() {
    let (_dir, path) = data_dir();
    let up = Up::start(&path).await;
    let visitor = Browser::new();
    for page in [
        "",
        "signin",
        "members",
        "members/owner",
        "contact",
        "privacy",
        "webhooks",
        "style.css",
    ] {
        let answer = visitor.get(&format!("{}{page}", up.demo)).await;
        assert_eq!(answer.status, StatusCode::OK, "/{page}: {}", answer.body);
    }
    let home = visitor.get(&up.demo).await;
    let csp = home.csp.expect("a CSP");
    assert!(
        csp.contains(&format!("script-src {}", up.gateway.trim_end_matches('/'))),
        "{csp}"
    );
    assert_eq!(
        visitor
            .get(&format!("{}members/nobody", up.demo))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let contact = visitor.get(&format!("{}contact", up.demo)).await;
    assert!(
        contact
            .body
            .contains("Olivia Owner has not enabled chat yet"),
        "{}",
        contact.body
    );
    assert!(!contact.body.contains("widget.js"));

    let anonymous_account = visitor.get(&format!("{}account", up.demo)).await;
    assert_eq!(anonymous_account.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous_account.location(), "/signin");

    let sam = Browser::new();
    sam.sign_in(&up, "sam").await;
    let account = sam.account(&up).await;
    assert!(
        account
            .body
            .contains("Signed in as <strong id=\"signed-in-as\">Sam Member</strong>")
    );
    assert_eq!(status_of(&account), "none");
    assert!(
        account.tag("enable-chat").contains(" disabled"),
        "{}",
        account.tag("enable-chat")
    );
    assert!(
        account
            .body
            .contains(">Acquire a permission token</button>")
    );
    assert!(account.body.contains(">Open my messenger</button>"));
    assert!(
        !account
            .body
            .contains(">Refresh the permission token</button>")
    );

    // Enabling chat without a permission token is refused, and nothing changes.
    let refused = sam
        .post(
            &format!("{}account/chat", up.demo),
            &[("csrf", &account.field("csrf")), ("enable-chat", "on")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    let profile = visitor.get(&format!("{}members/sam", up.demo)).await;
    assert!(profile.body.contains("id=\"no-chat\""), "{}", profile.body);
    assert!(!profile.body.contains("widget.js"));

    // A form without the session's CSRF token, or with another session's, does nothing.
    let rita = Browser::new();
    rita.sign_in(&up, "rita").await;
    let foreign = rita.account(&up).await.field("csrf");
    for csrf in ["", foreign.as_str()] {
        let forged = sam
            .post(&format!("{}account/permission", up.demo), &[("csrf", csrf)])
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    }
    // An answer to a consent request this browser did not make changes nothing.
    let stray = sam
        .get(&format!("{}account/consent?code=x&state=unknown", up.demo))
        .await;
    assert_eq!(stray.status, StatusCode::BAD_REQUEST, "{}", stray.body);
    assert_eq!(status_of(&sam.account(&up).await), "none");
    up.stop().await;
}

#[tokio::test]
async fn consent_through_the_pages_opens_the_chat_box() {
    let (_dir, path) = data_dir();
    let up = Up::start(&path).await;
    let sam = Browser::new();
    sam.sign_in(&up, "sam").await;

    let back = sam.consent(&up, "approve").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert_eq!(back.location(), "/account?result=granted");
    let account = sam.account(&up).await;
    assert_eq!(status_of(&account), "valid");
    assert!(account.body.contains("id=\"permission-expires\""));
    assert!(
        !account.tag("enable-chat").contains("disabled"),
        "{}",
        account.tag("enable-chat")
    );
    assert!(
        account
            .body
            .contains(">Refresh the permission token</button>")
    );
    let saved = sam
        .post(
            &format!("{}account/chat", up.demo),
            &[("csrf", &account.field("csrf")), ("enable-chat", "on")],
        )
        .await;
    assert_eq!(saved.location(), "/account?result=saved");
    assert!(
        sam.account(&up)
            .await
            .tag("enable-chat")
            .contains(" checked")
    );

    // An anonymous visitor gets the chat box without an assertion.
    let anonymous = Browser::new();
    let profile = anonymous.get(&format!("{}members/sam", up.demo)).await;
    let script = profile.tag("chat-box").to_owned();
    assert!(script.contains("data-member=\"sam\""), "{script}");
    let widget = format!(
        "<script src=\"{}widget.js\" data-app=\"{}\" data-endpoint=\"ce_",
        up.gateway,
        up.app_id()
    );
    assert!(profile.body.contains(&widget), "{}", profile.body);
    assert!(!profile.body.contains("data-visitor-assertion"));
    let endpoint = profile.field_after("data-endpoint=\"");

    // A signed-in visitor is vouched for, and Palaver accepts the assertion.
    let rita = Browser::new();
    rita.sign_in(&up, "rita").await;
    let profile = rita.get(&format!("{}members/sam", up.demo)).await;
    let assertion = profile.field_after("data-visitor-assertion=\"");
    let header = jsonwebtoken::decode_header(&assertion).unwrap();
    assert_eq!(header.kid.as_deref(), up.app["identity_key_id"].as_str());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[up.app_id()]);
    let claims = jsonwebtoken::decode::<Value>(
        &assertion,
        &jsonwebtoken::DecodingKey::from_secret(
            up.app["identity_key"].as_str().unwrap().as_bytes(),
        ),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "rita");
    assert_eq!(claims["name"], "Rita Reader");
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 24 * 3600);
    let session = reqwest::Client::new()
        .post(format!("{}v1/visitor-sessions", up.gateway))
        .header("origin", up.demo_origin())
        .json(&json!({"app_id": up.app_id(), "endpoint": endpoint, "assertion": assertion}))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), StatusCode::CREATED);
    let session: Value = session.json().await.unwrap();
    assert_eq!(session["visitor"]["verified"], true, "{session}");
    assert_eq!(session["visitor"]["display_name"], "Rita Reader");

    // A message left while Sam is offline reaches the demo site's webhook receiver,
    // signed by the gateway's webhook sender.
    let gateway = reqwest::Client::new();
    let session: Value = gateway
        .post(format!("{}v1/visitor-sessions", up.gateway))
        .header("origin", up.demo_origin())
        .json(&json!({"app_id": up.app_id(), "endpoint": endpoint, "display_name": "Vera"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let left = gateway
        .post(format!(
            "{}v1/endpoints/{endpoint}/offline-messages",
            up.gateway
        ))
        .header("origin", up.demo_origin())
        .json(&json!({"session_token": session["session_token"], "text": "call me back"}))
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), StatusCode::ACCEPTED);
    let list = palaver_kit::testing::eventually("the offline message's webhook", || async {
        let list = anonymous.get(&format!("{}webhooks", up.demo)).await;
        if list.body.contains("data-type=\"message.offline\"") {
            Ok(list)
        } else {
            Err(list.body)
        }
    })
    .await;
    assert!(list.body.contains("call me back"), "{}", list.body);

    // Sam sees his own chat box as an anonymous visitor would.
    let own = sam.get(&format!("{}members/sam", up.demo)).await;
    assert!(own.body.contains(&widget));
    assert!(!own.body.contains("data-visitor-assertion"));

    let refreshed = sam.press(&up, "/account/permission/refresh").await;
    assert_eq!(refreshed.location(), "/account?result=refreshed");
    assert_eq!(status_of(&sam.account(&up).await), "valid");

    // "Open my messenger" makes a fresh login link that signs Sam in to the console.
    let messenger = sam.press(&up, "/account/messenger").await;
    let link = messenger.location().to_owned();
    let token = link
        .strip_prefix(&format!("{}console/login?token=", up.gateway))
        .unwrap_or_else(|| panic!("a console login link: {link}"));
    let operator = reqwest::Client::new()
        .post(format!("{}v1/operator-sessions", up.gateway))
        .json(&json!({"login_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(operator.status(), StatusCode::CREATED);
    let operator: Value = operator.json().await.unwrap();
    assert_eq!(operator["member"]["external_id"], "sam", "{operator}");

    let revoked = sam.press(&up, "/account/permission/revoke").await;
    assert_eq!(revoked.location(), "/account?result=revoked");
    let account = sam.account(&up).await;
    assert_eq!(status_of(&account), "revoked");
    assert!(account.tag("enable-chat").contains(" disabled"));
    assert!(
        account
            .body
            .contains(">Acquire a permission token</button>")
    );
    let profile = anonymous.get(&format!("{}members/sam", up.demo)).await;
    assert!(!profile.body.contains("widget.js"), "{}", profile.body);
    up.stop().await;
}

#[tokio::test]
async fn denying_consent_changes_nothing() {
    let (_dir, path) = data_dir();
    let up = Up::start(&path).await;
    let rita = Browser::new();
    rita.sign_in(&up, "rita").await;
    let back = rita.consent(&up, "deny").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert_eq!(back.location(), "/account?result=denied");
    let account = rita.get(&format!("{}account?result=denied", up.demo)).await;
    assert!(
        account.body.contains("You denied the request"),
        "{}",
        account.body
    );
    assert_eq!(status_of(&account), "none");
    assert!(account.tag("enable-chat").contains(" disabled"));
    assert!(
        account
            .body
            .contains(">Acquire a permission token</button>")
    );
    up.stop().await;
}

#[tokio::test]
async fn a_restart_on_another_port_keeps_the_demo_app_and_moves_it() {
    let (_dir, path) = data_dir();
    let first = Up::start(&path).await;
    let app_id = first.app_id().to_owned();
    let old_demo = first.demo.clone();
    // The printed console link signs the site owner in.
    let token = first.console.split("token=").nth(1).expect("a login token");
    let operator = reqwest::Client::new()
        .post(format!("{}v1/operator-sessions", first.gateway))
        .json(&json!({"login_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(operator.status(), StatusCode::CREATED);
    first.stop().await;

    // Holding the old port makes sure the demo site moves.
    let old_port = reqwest::Url::parse(&old_demo).unwrap().port().unwrap();
    let _held = std::net::TcpListener::bind(("127.0.0.1", old_port)).expect("the old port is free");
    let second = Up::start(&path).await;
    assert_eq!(second.app_id(), app_id);
    assert_ne!(second.demo, old_demo);
    let app: Value = reqwest::Client::new()
        .get(format!("{}v1/admin/apps/{app_id}", second.gateway))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(app["origins"], json!([second.demo_origin()]), "{app}");
    assert_eq!(
        app["return_urls"],
        json!([format!("{}account/consent", second.demo)]),
        "{app}"
    );
    assert_eq!(
        app["privacy_url"],
        format!("{}privacy", second.demo),
        "{app}"
    );
    // The members made on the first start are still there, once each.
    let sam = Browser::new();
    sam.sign_in(&second, "sam").await;
    assert_eq!(status_of(&sam.account(&second).await), "none");
    second.stop().await;
}

#[tokio::test]
async fn the_webhook_receiver_keeps_only_signed_deliveries() {
    let (_dir, path) = data_dir();
    let up = Up::start(&path).await;
    // The secret the demo site keeps is the one the API gave for its receiver.
    let webhook: Value = reqwest::Client::new()
        .get(format!("{}v1/cms/webhook", up.gateway))
        .bearer_auth(up.app["api_secret"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(webhook["url"], format!("{}webhooks", up.demo), "{webhook}");
    assert_eq!(webhook["events"].as_array().unwrap().len(), 5, "{webhook}");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(path.join("demo-site.json")).unwrap()).unwrap();
    let secret = saved["webhook_secret"].as_str().unwrap();
    assert_eq!(webhook["secret"], secret);

    let http = reqwest::Client::new();
    let body = json!({
        "type": "message.offline",
        "timestamp": "2026-11-24T12:00:00Z",
        "data": {"member": "owner", "text": "<b>call me</b>"},
    })
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let deliver = |id: &'static str, signature: String| {
        http.post(format!("{}webhooks", up.demo))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature)
            .body(body.clone())
            .send()
    };
    let forged = palaver_gateway::webhooks::signature::sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_forged",
        now,
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        deliver("msg_forged", forged).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let list = Browser::new().get(&format!("{}webhooks", up.demo)).await;
    assert!(list.body.contains("id=\"no-webhooks\""), "{}", list.body);

    let signed =
        palaver_gateway::webhooks::signature::sign(secret, "msg_good", now, body.as_bytes())
            .unwrap();
    for _ in 0..2 {
        let delivered = deliver("msg_good", signed.clone()).await.unwrap();
        assert_eq!(delivered.status(), StatusCode::NO_CONTENT);
    }
    let list = Browser::new().get(&format!("{}webhooks", up.demo)).await;
    assert_eq!(
        list.body.matches("data-id=\"msg_good\"").count(),
        1,
        "{}",
        list.body
    );
    assert!(list.body.contains("data-type=\"message.offline\""));
    assert!(
        list.body.contains("&lt;b&gt;call me&lt;/b&gt;"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("msg_forged"));
    up.stop().await;
}
