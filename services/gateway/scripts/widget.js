/*
 * Palaver chat widget. A page embeds
 *   <script src="https://GATEWAY/widget.js" data-app="APP_ID" data-endpoint="ce_…" async></script>
 * with optional data-visitor-assertion, data-theme (none|blue|green|orange|pink|purple|gray),
 * data-width, data-height, data-title, data-lang and data-mode (panel|inline|iframe).
 *
 * It renders into a shadow root (styles through constructable stylesheets, so a page CSP
 * that forbids inline styles does not block them) a presence badge that follows the
 * member's status live over the WebSocket (a watch-only socket until someone chats;
 * polling the presence JSON every 30 s when no socket can be opened), and a chat: a name
 * prompt (or the CMS's identity assertion), messages with delivery state, typing, and
 * "leave a message" while the member is offline. The conversation survives reloads
 * (localStorage, keyed by app and endpoint) and reconnects resume from the last sequence
 * number. Text is always rendered as text. In the frame page (widget/frame) it reads its
 * parameters from the page's URL and renders inline, full size.
 *
 * The gateway assembles this script when it is built: each `// include:` line below is
 * replaced by that file of services/gateway/scripts/ (see the gateway's build.rs). It stays
 * one classic script that defines nothing outside this function.
 */
(function () {
"use strict";

// include: widget/strings.js
// include: widget/styles.js
// include: widget/config.js
// include: socket.js
// include: widget/state.js
// include: widget/ui.js
// include: widget/presence.js
// include: widget/conversation.js
// include: widget/views.js

var script = document.currentScript;
if (!script) return;
var config = readConfig(script);
if (!config) return;
if (config.mode === "iframe") {
  place(widgetFrame());
  return;
}
var ui = buildUi();
place(ui.host);
var state = loadState("palaver:" + config.app + ":" + config.endpoint);
var socket = palaverSocket(config.gateway.replace(/^http/, "ws") + "/v1/ws", {
  hello: hello, welcome: onWelcome, held: held, resumed: flushPending, frame: onFrame, down: onDown
});
wire();
renderMessages();
showPresence();
if (config.mode !== "panel") state.live = true;
poll();
})();
