/** How many of a conversation's newest messages opening it loads; older on request. */
const HISTORY_PAGE = 50;

function renderConversation() {
  const c = state.conversations.get(state.active);
  if (!c) return;
  $("visitor-name").textContent = peer(c).display_name;
  const badge = $("verified");
  const fresh = verifiedBadge(peer(c).verified);
  badge.className = fresh.className;
  badge.title = fresh.title;
  badge.textContent = fresh.textContent;
  badge.dataset.verified = fresh.dataset.verified;
  $("state").textContent = c.blocked ? "Visitor blocked" : c.state === "closed" ? "Closed" : "Open";
  $("state").dataset.state = c.state;
  $("message-label").textContent = `Message to ${peer(c).display_name}`;
  const closed = c.state === "closed";
  $("close").disabled = closed;
  $("message-input").disabled = closed;
  $("send").disabled = closed;
  $("message-input").placeholder = closed
    ? "This conversation is closed."
    : "Write a reply. Enter sends, Shift+Enter starts a new line.";
  // Only the member chatted with may block; the other member blocks from their console.
  $("block").hidden = c.side !== "member";
  $("block").textContent = c.blocked ? "Unblock visitor" : "Block visitor";
  $("block").dataset.blocked = c.blocked ? "true" : "false";
  const notice = $("notice");
  notice.textContent = c.notice;
  notice.hidden = !c.notice;
  renderMessages(c);
  renderTyping(c);
  $("older").hidden = lowestHeld(c) <= 1;
}

/** The lowest sequence number this console holds (or would, once resumed). */
function lowestHeld(c) {
  return c.messages.size > 0 ? Math.min(...c.messages.keys()) : c.historyFrom + 1;
}

/** One page of older messages, going back through the history. */
async function loadOlder() {
  const c = state.conversations.get(state.active);
  if (!c) return;
  const before = lowestHeld(c);
  const query = new URLSearchParams({ before_seq: String(before), limit: String(HISTORY_PAGE) });
  try {
    const page = await (await api("GET", `/v1/me/conversations/${encodeURIComponent(c.id)}/messages?${query}`)).json();
    for (const m of page.messages) if (!c.messages.has(m.seq)) c.messages.set(m.seq, { ...m, conversation: c.id });
    c.historyFrom = page.more && page.messages.length > 0 ? page.messages[0].seq - 1 : 0;
    if (c.id !== state.active) return;
    // Keep the messages on screen where they are while older ones go in above.
    const list = $("messages");
    const fromBottom = list.scrollHeight - list.scrollTop;
    renderConversation();
    list.scrollTop = list.scrollHeight - fromBottom;
    announce(`${page.messages.length} earlier messages loaded.`);
  } catch (error) {
    reportError(error);
  }
}

function renderMessages(c) {
  const list = $("messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const rows = [...c.messages.values()].sort((a, b) => a.seq - b.seq).map((m) => messageRow(c, m));
  for (const [clientId, p] of c.pending) rows.push(pendingRow(c, clientId, p));
  // Re-render only what changed, keeping the scroll position and any focus.
  const existing = new Map([...list.children].map((li) => [li.dataset.key, li]));
  const wanted = new Set(rows.map((r) => r.dataset.key));
  for (const [key, li] of existing) if (!wanted.has(key)) li.remove();
  let previous = null;
  for (const row of rows) {
    const old = existing.get(row.dataset.key);
    let node = row;
    if (old && old.dataset.render === row.dataset.render) node = old;
    else if (old) old.replaceWith(row);
    const expectedPlace = previous ? previous.nextSibling : list.firstChild;
    if (expectedPlace !== node) list.insertBefore(node, expectedPlace);
    previous = node;
  }
  if (nearBottom) list.scrollTop = list.scrollHeight;
}

function delivery(c, m) {
  if (m.from !== c.side) return "";
  return c.peerReadSeq >= m.seq ? "read" : "delivered";
}

function messageRow(c, m) {
  const mine = m.from === c.side;
  const status = delivery(c, m);
  const row = el("li", {
    class: mine ? "message mine" : "message theirs",
    "data-seq": String(m.seq),
    "data-id": m.id,
    "data-from": m.from,
  }, [
    el("div", { class: "meta" }, [
      el("span", { class: "sender", text: mine ? "You" : peer(c).display_name }),
      el("time", { datetime: m.sent_at, text: formatClock(m.sent_at) }),
    ]),
    el("div", { class: "text", text: m.text }),
    mine ? el("span", { class: "delivery", "data-part": "delivery", "data-delivery": status, text: status === "read" ? "Read" : "Delivered" }) : null,
  ]);
  row.dataset.key = `s${m.seq}`;
  row.dataset.render = `${m.id}|${status}`;
  return row;
}

function pendingRow(c, clientId, p) {
  const children = [
    el("div", { class: "meta" }, [el("span", { class: "sender", text: "You" })]),
    el("div", { class: "text", text: p.text }),
    el("span", {
      class: "delivery",
      "data-part": "delivery",
      "data-delivery": p.error ? "failed" : "sending",
      text: p.error ? `Not sent: ${p.error}` : "Sending…",
    }),
  ];
  if (p.error) {
    const retry = el("button", { type: "button", class: "small", text: "Send again" });
    retry.addEventListener("click", () => {
      p.error = "";
      sendPending(c, clientId);
      renderConversation();
    });
    children.push(retry);
  }
  const row = el("li", { class: "message mine pending", "data-client-id": clientId }, children);
  row.dataset.key = `p${clientId}`;
  row.dataset.render = p.error || "sending";
  return row;
}

function renderTyping(c) {
  const typing = $("typing");
  const shown = c.typingUntil > Date.now();
  typing.textContent = shown ? `${peer(c).display_name} is typing…` : "";
  typing.dataset.typing = shown ? "true" : "false";
}

/** Moves the read mark when the member can see the newest messages. */
function markRead(c) {
  if (c.id !== state.active || document.visibilityState !== "visible" || !$("transcript-view").hidden) return;
  const newest = Math.max(0, ...c.messages.keys());
  if (newest > c.myReadSeq) {
    c.myReadSeq = newest;
    socket.send({ type: "read", conversation: c.id, seq: newest });
  }
  if (c.unread !== 0) {
    c.unread = 0;
    renderList();
  }
}
