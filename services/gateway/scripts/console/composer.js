/** At most one `typing` frame per this many ms while the member writes. */
const TYPING_SEND_EVERY_MS = 3000;

function newClientId() {
  if (crypto.randomUUID) return `console-${crypto.randomUUID()}`;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function sendPending(c, clientId) {
  const p = c.pending.get(clientId);
  if (!p || p.error) return;
  socket.send({ type: "message.send", conversation: c.id, client_id: clientId, text: p.text });
}

function sendDraft() {
  const c = state.conversations.get(state.active);
  const input = $("message-input");
  const text = input.value.trim();
  if (!c || !text || c.state === "closed") return;
  const clientId = newClientId();
  c.pending.set(clientId, { text, error: "" });
  input.value = "";
  c.draft = "";
  state.lastTypingSent = 0;
  sendPending(c, clientId);
  renderConversation();
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function onInput() {
  const c = state.conversations.get(state.active);
  if (!c) return;
  c.draft = $("message-input").value;
  const now = Date.now();
  if (c.draft.trim() && now - state.lastTypingSent > TYPING_SEND_EVERY_MS) {
    state.lastTypingSent = now;
    socket.send({ type: "typing", conversation: c.id });
  }
}
