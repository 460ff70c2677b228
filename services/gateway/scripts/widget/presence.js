/** The member's display name, once presence has said it. */
function memberName() { return state.presence ? state.presence.display_name : ""; }

/** Shows the member's presence in the badges, the title and the open button. */
function showPresence() {
  var presence = state.presence;
  var unavailable = state.unavailable;
  var name = memberName();
  parts("dot").forEach(function (d) { d.setAttribute("data-status", unavailable || !presence ? "offline" : presence.status); });
  parts("name").forEach(function (n) { n.textContent = name; });
  parts("status").forEach(function (s) { s.textContent = unavailable ? t("unavailable") : presence ? presence.status_text : ""; });
  ui.title.textContent = config.title || t("title", { name: name });
  var accepts = !unavailable && presence && presence.accepts_chats;
  ui.open.hidden = unavailable || !presence;
  ui.open.textContent = accepts ? t("chat") : t("leave");
  ui.open.setAttribute("aria-label", (accepts ? t("chat") : t("leave")) + (name ? " — " + name : ""));
  ui.host.setAttribute("data-status", unavailable ? "unavailable" : presence ? presence.status : "");
  render();
}

/** Reads the presence JSON; again every POLL_MS while no socket is welcomed. */
function poll() {
  clearTimeout(state.pollTimer);
  fetch(config.gateway + "/v1/endpoints/" + encodeURIComponent(config.endpoint) + "/presence?lang=" + config.lang, { cache: "no-cache" })
    .then(function (response) {
      if (response.status === 404) { state.unavailable = true; showPresence(); return null; }
      return response.ok ? response.json() : null;
    })
    .then(function (body) {
      if (!body) return;
      var first = !state.presence;
      state.unavailable = false;
      state.presence = body;
      showPresence();
      if (first || !socket.open()) socket.connect();
    })
    .catch(function () { /* the network is down: try again at the next poll */ })
    .then(function () { if (!socket.up()) state.pollTimer = setTimeout(poll, POLL_MS); });
}

/** A `presence` frame for the widget's endpoint. */
function onPresence(f) {
  var wasAccepting = state.presence && state.presence.accepts_chats;
  var presence = state.presence = state.presence || { display_name: "" };
  presence.status = f.status;
  presence.status_text = f.status_text;
  presence.accepts_chats = f.accepts_chats;
  state.unavailable = false;
  if (wasAccepting && !f.accepts_chats && state.conv) note(t("offlineNow", { name: presence.display_name }), "offline");
  if (f.accepts_chats) clearNote("offline");
  showPresence();
}
