/** The console's one WebSocket, on the core it shares with the widget (socket.js). */
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const socket = palaverSocket(`${scheme}//${location.host}/v1/ws`, {
  hello,
  welcome: onWelcome,
  held,
  resumed: onResumed,
  frame: onFrame,
  down: onDown,
});

function setConnection(kind, text) {
  const node = $("connection");
  node.dataset.state = kind;
  node.textContent = text;
}

/** The hello of each connection; none once the session has ended. */
function hello() {
  if (!state.session) return null;
  setConnection("connecting", "Connecting…");
  return { type: "hello", token: state.session.access_token };
}

function onWelcome(frame) {
  if (!frame.you || frame.you.kind !== "operator") {
    endSession(`This is not an operator session. ${ASK_FOR_LINK}`);
    return false;
  }
  setConnection("online", "Connected");
  if (state.status !== "online") socket.send({ type: "presence.set", status: state.status });
  return true;
}

/** Shown or open conversations go on from what this console holds. */
function held() {
  const resumes = [];
  for (const c of state.conversations.values()) {
    if (c.historyLoaded) resumes.push([c.id, c.heldSeq]);
    else if (c.state === "open") resumes.push([c.id, c.lastSeq]);
  }
  return resumes;
}

function onResumed() {
  for (const c of state.conversations.values()) {
    for (const clientId of c.pending.keys()) sendPending(c, clientId);
  }
  loadOfflineMessages().catch(reportError);
}

function onDown(delay) {
  setConnection("offline", `Connection lost; reconnecting in ${Math.ceil(delay / 1000)} s…`);
}
