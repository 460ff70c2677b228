/** Shows `text` in the notice; `kind` lets a later event clear only its own notice. */
function note(text, kind) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
  ui.notice.setAttribute("data-kind", kind || "");
}
function clearNote(kind) { if (!kind || ui.notice.getAttribute("data-kind") === kind) note(""); }

/** What the panel shows: the chat once there is one, else what the presence allows. */
function chooseView() {
  var presence = state.presence;
  if (state.token && (state.conv || state.chatting)) state.view = "chat";
  else if (state.view === "done") return;
  else if (state.unavailable || !presence) state.view = "";
  else if (!presence.accepts_chats) state.view = "offline";
  else state.view = state.token ? "chat" : "name";
}

function render() {
  chooseView();
  var view = state.view;
  ui.nameForm.hidden = view !== "name";
  ui.chat.hidden = view !== "chat";
  ui.offlineForm.hidden = view !== "offline";
  ui.offlineDone.hidden = view !== "done";
  ui.offlineNameField.hidden = !!state.token || (!!config.assertion && !state.assertionRefused);
  ui.offlineIntro.textContent = t("offlineIntro", { name: memberName() });
  ui.compose.hidden = state.closed;
  ui.newChatRow.hidden = !state.closed;
  ui.start.disabled = state.busy;
  ui.offlineSend.disabled = state.busy;
  if (!ui.nameInput.value && state.name) ui.nameInput.value = state.name;
  if (!ui.offlineName.value && state.name) ui.offlineName.value = state.name;
  if (view === "name" && panelVisible() && config.assertion && !state.assertionRefused && !state.token && !state.busy && !state.autoStarted) {
    state.autoStarted = true;
    startChat(null);
  }
}

function panelVisible() { return config.mode !== "panel" || !ui.panel.hidden; }

function openPanel() {
  ui.panel.hidden = false;
  ui.open.setAttribute("aria-expanded", "true");
  state.live = true;
  render();
  renderMessages();
  markRead();
  focusView();
}

function closePanel() {
  if (config.mode !== "panel") return;
  ui.panel.hidden = true;
  ui.open.setAttribute("aria-expanded", "false");
  ui.open.focus();
}

function focusView() {
  var target = {
    name: ui.nameInput, chat: ui.messageInput, done: ui.offlineDone,
    offline: ui.offlineNameField.hidden ? ui.offlineText : ui.offlineName
  }[state.view];
  if (target && !target.closest("[hidden]")) target.focus();
}

function problemText(response, body) {
  var code = body && body.code;
  if (response.status === 429 || code === "rate_limited") {
    return t("rateLimited", { s: response.headers.get("retry-after") || 60 });
  }
  if (code === "visitor_blocked") return t("blocked");
  return t("failedGeneric");
}

function post(path, body) {
  return fetch(config.gateway + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
    .then(function (response) {
      return response.json().catch(function () { return null; }).then(function (json) {
        return { response: response, body: json };
      });
    });
}

/** A visitor session: with the CMS's assertion, or the anonymous `name`. */
function createSession(name) {
  var body = { app_id: config.app, endpoint: config.endpoint };
  if (name == null) body.assertion = config.assertion;
  else body.display_name = name;
  return post("/v1/visitor-sessions", body).then(function (answer) {
    if (answer.response.status === 201) {
      forgetSession();
      state.token = answer.body.session_token;
      state.expires = Date.now() + (answer.body.expires_in || 0) * 1000;
      if (name != null) state.name = name;
      save();
      return true;
    }
    if (answer.body && answer.body.code === "invalid_assertion") {
      state.assertionRefused = true;
      note(t("assertionRefused"));
      return false;
    }
    if (answer.body && (answer.body.code === "endpoint_closed" || answer.body.code === "not_found")) {
      state.unavailable = true;
      showPresence();
    }
    note(problemText(answer.response, answer.body));
    return false;
  });
}

function validName(input, error) {
  var name = input.value.trim();
  var ok = name.length >= 1 && Array.from(name).length <= 64;
  error.textContent = ok ? "" : t("nameInvalid");
  input.setAttribute("aria-invalid", ok ? "false" : "true");
  return ok ? name : null;
}

function startChat(name) {
  state.busy = true;
  render();
  note(t("connecting"));
  createSession(name).then(function (ok) {
    state.busy = false;
    state.closed = false;
    if (ok) {
      state.chatting = true;
      save();
      clearNote();
      socket.connect();
    }
    render();
    focusView();
  }, function () {
    state.busy = false;
    note(t("failedGeneric"));
    render();
  });
}

function sendOffline(event) {
  event.preventDefault();
  if (state.busy) return;
  var text = ui.offlineText.value.trim();
  var email = ui.offlineEmail.value.trim();
  var textOk = text.length > 0 && text.length <= MAX_TEXT;
  var emailOk = !email || /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email);
  ui.offlineTextErr.textContent = textOk ? "" : t("textInvalid");
  ui.offlineText.setAttribute("aria-invalid", textOk ? "false" : "true");
  ui.offlineEmailErr.textContent = emailOk ? "" : t("emailInvalid");
  ui.offlineEmail.setAttribute("aria-invalid", emailOk ? "false" : "true");
  var name = null;
  if (!ui.offlineNameField.hidden) {
    name = validName(ui.offlineName, ui.offlineNameErr);
    if (name == null) { ui.offlineName.focus(); return; }
  }
  if (!textOk) { ui.offlineText.focus(); return; }
  if (!emailOk) { ui.offlineEmail.focus(); return; }
  state.busy = true;
  render();
  var session = state.token ? Promise.resolve(true) : createSession(name);
  session.then(function (ok) {
    if (!ok) return null;
    var body = { session_token: state.token, text: text };
    if (email) body.email = email;
    return post("/v1/endpoints/" + encodeURIComponent(config.endpoint) + "/offline-messages", body);
  }).then(function (answer) {
    state.busy = false;
    if (answer && answer.response.status === 202) {
      clearNote();
      ui.offlineText.value = "";
      ui.offlineDone.textContent = t("offlineDone", { name: memberName() });
      state.view = "done";
      render();
      ui.offlineDone.focus();
      return;
    }
    if (answer && answer.body && (answer.body.code === "token_expired" || answer.body.code === "unauthenticated")) {
      forgetSession();
      save();
      note(t("expired"));
    } else if (answer) {
      note(problemText(answer.response, answer.body));
    }
    render();
  }, function () {
    state.busy = false;
    note(t("failedGeneric"));
    render();
  });
}

/** What the visitor's clicks and keys do. */
function wire() {
  ui.open.addEventListener("click", function () { if (ui.panel.hidden) openPanel(); else closePanel(); });
  ui.close.addEventListener("click", closePanel);
  ui.panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.stopPropagation(); closePanel(); }
  });
  ui.nameForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (state.busy) return;
    var name = validName(ui.nameInput, ui.nameErr);
    if (name == null) { ui.nameInput.focus(); return; }
    startChat(name);
  });
  ui.compose.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = ui.messageInput.value.trim();
    if (!text || text.length > MAX_TEXT) return;
    ui.messageInput.value = "";
    state.lastTyping = 0;
    sendText(text);
  });
  ui.messageInput.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.compose.requestSubmit();
    }
  });
  ui.messageInput.addEventListener("input", function () {
    if (!state.conv || !ui.messageInput.value) return;
    var now = Date.now();
    if (now - state.lastTyping >= TYPING_SEND_MS && socket.send({ type: "typing", conversation: state.conv })) state.lastTyping = now;
  });
  ui.newChat.addEventListener("click", function () {
    state.conv = "";
    state.msgs = [];
    state.failed = [];
    state.closed = false;
    clearNote();
    save();
    renderMessages();
    if (!socket.send({ type: "conversation.open", endpoint: config.endpoint })) socket.connect();
    render();
    ui.messageInput.focus();
  });
  ui.offlineForm.addEventListener("submit", sendOffline);
  document.addEventListener("visibilitychange", markRead);
}
