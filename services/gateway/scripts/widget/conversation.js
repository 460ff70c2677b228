/** The hello frame: the visitor session's, or a watch-only one for the app's page. */
function hello() {
  if (state.refused || state.unavailable) return null;
  return state.token
    ? { type: "hello", token: state.token, lang: config.lang }
    : { type: "hello", app_id: config.app, lang: config.lang };
}

function onWelcome() {
  clearTimeout(state.pollTimer);
  state.pollTimer = 0;
  clearNote("connection");
  socket.send({ type: "presence.watch", endpoints: [config.endpoint] });
  if (state.token && !state.conv && state.chatting) socket.send({ type: "conversation.open", endpoint: config.endpoint });
}

/** The conversation to resume after a welcome. */
function held() { return state.token && state.conv ? [[state.conv, lastSeq()]] : []; }

function onDown(delay, wasUp) {
  if (wasUp && state.conv) note(t("reconnecting"), "connection");
  if (!state.pollTimer) state.pollTimer = setTimeout(poll, POLL_MS);
}

function onFrame(f) {
  switch (f.type) {
    case "presence":
      if (f.endpoint === config.endpoint) onPresence(f);
      break;
    case "conversation":
      if (f.endpoint === config.endpoint) onConversation(f);
      break;
    case "message":
      if (f.conversation === state.conv) onMessage(f);
      break;
    case "message.ack":
      onAck(f);
      break;
    case "typing":
      if (f.conversation === state.conv && f.from === "member") showTyping();
      break;
    case "read":
      if (f.conversation === state.conv && f.by === "member" && f.seq > state.readByMember) {
        state.readByMember = f.seq;
        save();
        renderMessages();
      }
      break;
    case "error":
      onError(f);
      break;
  }
}

function onConversation(f) {
  if (f.id !== state.conv) {
    state.conv = f.id;
    state.msgs = [];
    state.readByMember = 0;
    state.readSent = 0;
    save();
  }
  state.closed = f.state === "closed";
  if (state.closed) note(t("closed"), "closed");
  socket.resume(f.id, lastSeq());
  flushPending();
  renderMessages();
  render();
}

function onError(f) {
  if (!socket.up()) {
    if (f.code === "token_expired" || f.code === "unauthenticated") {
      if (state.token) {
        forgetSession();
        save();
        note(t("expired"));
        renderMessages();
        render();
        socket.connect();
      }
      return;
    }
    if (f.code === "origin_not_allowed" || f.code === "not_found") {
      // This page may not use the socket: presence comes from polling.
      state.refused = true;
      if (!state.pollTimer) state.pollTimer = setTimeout(poll, POLL_MS);
    }
    return;
  }
  if (f.ref === config.endpoint && (f.code === "not_found" || f.code === "endpoint_closed")) {
    state.unavailable = true;
    showPresence();
    return;
  }
  var pending = state.pending.filter(function (p) { return p.cid === f.ref; })[0];
  if (pending) {
    if (f.code === "rate_limited") {
      var wait = +((/(\d+)\s*s\b/.exec(f.message || "") || [])[1] || 2);
      note(t("rateLimited", { s: wait }), "rate");
      setTimeout(flushPending, wait * 1000);
    } else {
      state.pending = state.pending.filter(function (p) { return p !== pending; });
      pending.failed = true;
      state.failed.push(pending);
      save();
      if (f.code === "failed_precondition") state.closed = true;
      note(state.closed ? t("closed") : f.code === "visitor_blocked" ? t("blocked") : t("failedGeneric"), state.closed ? "closed" : "");
      renderMessages();
      render();
    }
    return;
  }
  if (f.ref && f.ref === state.conv && (f.code === "not_found" || f.code === "permission_denied")) {
    // The conversation is gone (erased): open a new one.
    state.conv = "";
    state.msgs = [];
    save();
    renderMessages();
    socket.send({ type: "conversation.open", endpoint: config.endpoint });
    return;
  }
  if (f.ref === config.endpoint) {
    note(f.code === "visitor_blocked" ? t("blocked") : f.code === "rate_limited" ? t("rateLimited", { s: 60 }) : t("failedGeneric"));
  }
}

function lastSeq() {
  return state.msgs.reduce(function (max, m) { return m.seq > max ? m.seq : max; }, 0);
}

function onMessage(f) {
  if (state.msgs.some(function (m) { return m.seq === f.seq; })) return;
  state.pending = state.pending.filter(function (p) { return !(f.from === "visitor" && p.cid === f.client_id); });
  state.msgs.push({ seq: f.seq, id: f.id, cid: f.client_id, from: f.from, text: f.text, at: f.sent_at });
  state.msgs.sort(function (a, b) { return a.seq - b.seq; });
  save();
  if (f.from === "member") {
    hideTyping();
    if (state.live) ui.live.textContent = t("from", { name: memberName(), text: f.text });
  }
  renderMessages();
  markRead();
}

function onAck(f) {
  var pending = state.pending.filter(function (p) { return p.cid === f.client_id; })[0];
  if (!pending) return;
  clearNote("rate");
  onMessage({ seq: f.seq, id: f.id, client_id: f.client_id, from: "visitor", text: pending.text, sent_at: null });
}

function sendText(text) {
  var cid = crypto.randomUUID ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2);
  state.pending.push({ cid: cid, text: text });
  if (state.conv) socket.send({ type: "message.send", conversation: state.conv, client_id: cid, text: text });
  else if (!state.chatting) {
    // A session made for "leave a message" becomes a chat with its first message.
    state.chatting = true;
    socket.send({ type: "conversation.open", endpoint: config.endpoint });
  }
  save();
  renderMessages();
}

function flushPending() {
  if (!state.conv) return;
  state.pending.forEach(function (p) {
    socket.send({ type: "message.send", conversation: state.conv, client_id: p.cid, text: p.text });
  });
}

function markRead() {
  if (!state.conv || document.hidden || !panelVisible()) return;
  var seq = state.msgs.reduce(function (max, m) { return m.from === "member" && m.seq > max ? m.seq : max; }, 0);
  if (seq > state.readSent && socket.send({ type: "read", conversation: state.conv, seq: seq })) state.readSent = seq;
}

/** A message's delivery state: failed, sending, seen or sent. */
function delivery(m) {
  if (m.failed) return "failed";
  if (!m.seq) return "sending";
  return m.seq <= state.readByMember ? "seen" : "sent";
}

function renderMessages() {
  var shown = ui.shown;
  var all = state.msgs.concat(state.pending, state.failed);
  var wanted = {};
  var atBottom = ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 40;
  all.forEach(function (m) {
    var key = m.cid || "s" + m.seq;
    wanted[key] = true;
    var item = shown[key];
    if (!item) {
      var mine = m.from !== "member";
      item = el("li", { class: "msg" + (mine ? " me" : ""), "data-part": "message", "data-from": mine ? "visitor" : "member" }, [
        el("span", { class: "sr", text: (mine ? t("you") : memberName()) + ": " }),
        el("span", { class: "text", "data-part": "message-text", text: m.text }),
        el("span", { class: "meta", "data-part": "message-state" })
      ]);
      shown[key] = item;
    }
    if (m.seq) item.setAttribute("data-seq", m.seq);
    if (m.from !== "member") {
      var shownState = delivery(m);
      item.lastChild.textContent = t(shownState);
      item.setAttribute("data-state", shownState);
    }
    ui.messages.appendChild(item);
  });
  Object.keys(shown).forEach(function (key) {
    if (!wanted[key]) { shown[key].remove(); delete shown[key]; }
  });
  if (atBottom || state.live) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function showTyping() {
  ui.typing.textContent = t("typing", { name: memberName() });
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
}
function hideTyping() {
  clearTimeout(state.typingTimer);
  ui.typing.textContent = "";
}
