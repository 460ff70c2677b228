//! The pages of plain text: home, with the steps of the demo, and privacy.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use crate::demo::{Site, Visit};

pub(super) async fn home(State(site): State<Arc<Site>>, visit: Visit) -> Response {
    let content = r#"<p>This is a small website, as a CMS would make one, with Palaver's chat and
presence in it. It talks to Palaver only through Palaver's public CMS API, as a CMS plugin
would. No passwords: pick who you are.</p>
<ol class="steps">
  <li><a href="/signin">Sign in</a> as Sam Member.</li>
  <li>On <a href="/account">My Account</a>, click <em>Acquire a permission token</em> and
      approve on Palaver's consent page.</li>
  <li>Tick <em>Enable chat on my profile</em> and click <em>Save</em>.</li>
  <li>Click <em>Open my messenger</em>: that is Sam's console, where he answers chats.</li>
  <li>In a private window, open <a href="/members/sam">Sam's profile</a> and start a chat;
      sign in there as Rita Reader to chat as a verified visitor.</li>
  <li>Do the same as Olivia Owner, and her chat box appears on the
      <a href="/contact">Contact</a> page.</li>
  <li>Watch <a href="/webhooks">Webhooks</a>: leave a message while the member is offline
      and <code>message.offline</code> arrives.</li>
</ol>"#;
    visit.page(&site, "Welcome", content)
}

pub(super) async fn privacy(State(site): State<Arc<Site>>, visit: Visit) -> Response {
    let content = r#"<p>This demo site runs on your own machine. It keeps who is signed in (by a
cookie holding a random session id), each demo member's Palaver tokens and chat setting, and
the webhook events it received, in a file in Palaver's data directory. Nothing leaves your
machine.</p>
<p>When you chat, Palaver stores the conversation for the app's retention period so the member
can read it in their messenger; the member can see the name you give and, when you are signed
in here, that this site vouched for who you are.</p>"#;
    visit.page(&site, "Privacy", content)
}
