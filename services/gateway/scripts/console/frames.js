/** How long "is typing…" shows after the other side's last `typing` frame. */
const TYPING_SHOWN_MS = 6000;

/** What each frame from the server does; the socket handles welcome and pong itself. */
function onFrame(frame) {
  switch (frame.type) {
    case "conversation":
      onConversation(frame);
      break;
    case "message":
      onMessage(frame);
      break;
    case "message.ack":
      onAck(frame);
      break;
    case "typing":
      onTyping(frame);
      break;
    case "read":
      onRead(frame);
      break;
    case "error":
      onError(frame);
      break;
    default:
      break;
  }
}

function onConversation(frame) {
  const { c, isNew } = upsertConversation(frame, true);
  if (frame.state === "closed") c.typingUntil = 0;
  if (isNew) {
    c.historyLoaded = true;
    socket.resume(c.id, 0);
    if (frame.state === "open") announceNewChat(c);
  }
  renderList();
  if (c.id === state.active) renderConversation();
}

function onMessage(frame) {
  const c = record(frame.conversation);
  if (c.messages.has(frame.seq)) return;
  c.messages.set(frame.seq, frame);
  if (frame.client_id && c.pending.has(frame.client_id) && frame.from === c.side) c.pending.delete(frame.client_id);
  c.heldSeq = Math.max(c.heldSeq, frame.seq);
  const isNewer = frame.seq > c.lastSeq;
  c.lastSeq = Math.max(c.lastSeq, frame.seq);
  if (frame.from !== c.side) {
    c.typingUntil = 0;
    if (isNewer && frame.seq > c.myReadSeq) {
      c.unread += 1;
      const seen = c.id === state.active && document.visibilityState === "visible";
      if (!seen) notify(`${peer(c).display_name}`, frame.text, c.id);
      // New messages are read out here; the message list itself stays quiet, so a
      // conversation's history loading is not read out as news.
      announce(c.id === state.active
        ? `${peer(c).display_name}: ${frame.text}`
        : `New message from ${peer(c).display_name}`);
    }
  } else if (frame.seq > c.myReadSeq) {
    // The member wrote it (here or on another device): they have read up to it.
    c.myReadSeq = frame.seq;
    c.unread = 0;
  }
  if (c.id === state.active) {
    renderConversation();
    markRead(c);
  }
  renderList();
}

function onAck(frame) {
  for (const c of state.conversations.values()) {
    if (!c.pending.has(frame.client_id)) continue;
    const { text } = c.pending.get(frame.client_id);
    c.pending.delete(frame.client_id);
    if (!c.messages.has(frame.seq)) {
      c.messages.set(frame.seq, {
        conversation: c.id,
        seq: frame.seq,
        id: frame.id,
        client_id: frame.client_id,
        from: c.side,
        text,
        sent_at: new Date().toISOString(),
      });
    }
    c.heldSeq = Math.max(c.heldSeq, frame.seq);
    if (c.id === state.active) renderConversation();
    return;
  }
}

function onTyping(frame) {
  const c = state.conversations.get(frame.conversation);
  if (!c || frame.from === c.side) return;
  c.typingUntil = Date.now() + TYPING_SHOWN_MS;
  if (c.id === state.active) renderTyping(c);
  setTimeout(() => {
    if (c.id === state.active) renderTyping(c);
  }, TYPING_SHOWN_MS + 50);
}

function onRead(frame) {
  const c = state.conversations.get(frame.conversation);
  if (!c) return;
  if (frame.by !== c.side) {
    c.peerReadSeq = Math.max(c.peerReadSeq, frame.seq);
  } else {
    // Read on another device of the member.
    c.myReadSeq = Math.max(c.myReadSeq, frame.seq);
    if (c.myReadSeq >= c.lastSeq) c.unread = 0;
    renderList();
  }
  if (c.id === state.active) renderConversation();
}

function onError(frame) {
  if (!socket.up() && ["unauthenticated", "token_expired"].includes(frame.code)) {
    endSession(`Your session has ended. ${ASK_FOR_LINK}`);
    return;
  }
  if (frame.code === "slow_consumer") {
    // The server closes the socket next; the reconnect resumes every conversation.
    setConnection("offline", "The connection fell behind; catching up…");
    return;
  }
  const ref = frame.ref;
  for (const c of state.conversations.values()) {
    if (ref && c.pending.has(ref)) {
      c.pending.get(ref).error = frame.message;
      if (c.id === state.active) renderConversation();
      return;
    }
  }
  const c = ref && state.conversations.get(ref);
  if (c) {
    c.notice = frame.message;
    if (c.id === state.active) renderConversation();
    return;
  }
  reportError(new Error(frame.message));
}
