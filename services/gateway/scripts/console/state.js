/** Where the status the member chose is kept. */
const STATUS_KEY = "palaver.console.status";

/** Everything the console knows, in one object. */
const state = {
  session: null, // {access_token, expires_at, member}
  conversations: new Map(), // id -> conversation record
  tabs: [], // ids of open tabs, in order
  active: null, // the id shown
  nextCursor: null,
  status: localStorage.getItem(STATUS_KEY) || "online",
  lastTypingSent: 0,
  audio: null,
  transcriptUrl: null,
};

/** The conversation `id`, made empty when the console has not seen it yet. */
function record(id) {
  let c = state.conversations.get(id);
  if (!c) {
    c = {
      id,
      endpoint: "",
      visitor: { id: "", display_name: "Visitor", verified: false },
      state: "open",
      startedAt: new Date().toISOString(),
      lastSeq: 0, // the newest seq the server reported in the list
      heldSeq: 0, // the newest seq this console holds (what a resume goes on from)
      // Which side of the conversation the member is: "member" when chatted with,
      // "visitor" when they started it on another member's chat box.
      side: "member",
      memberName: "",
      myReadSeq: 0, // the member's read mark
      peerReadSeq: 0, // the other side's
      unread: 0,
      messages: new Map(), // seq -> message
      pending: new Map(), // client_id -> {text, status, error}
      historyLoaded: false,
      historyFrom: 0, // messages up to this seq are left to "Load earlier messages"
      draft: "",
      typingUntil: 0,
      blocked: false,
      notice: "",
    };
    state.conversations.set(id, c);
  }
  return c;
}

/** Merges a conversation from the API (`fresh` when a frame announced it). */
function upsertConversation(view, fresh) {
  const known = state.conversations.has(view.id);
  const c = record(view.id);
  c.endpoint = view.endpoint || c.endpoint;
  if (view.visitor) c.visitor = view.visitor;
  if (view.state) c.state = view.state;
  if (view.started_at) c.startedAt = view.started_at;
  if (typeof view.last_seq === "number" && view.last_seq > c.lastSeq) c.lastSeq = view.last_seq;
  if (typeof view.unread === "number" && !known) c.unread = view.unread;
  if (view.member_id) c.side = view.member_id === state.session.member.member_id ? "member" : "visitor";
  if (view.member_display_name) c.memberName = view.member_display_name;
  if (typeof view.visitor_blocked === "boolean") c.blocked = view.visitor_blocked;
  const [mine, theirs] = c.side === "member"
    ? [view.member_read_seq, view.visitor_read_seq]
    : [view.visitor_read_seq, view.member_read_seq];
  if (typeof mine === "number") c.myReadSeq = Math.max(c.myReadSeq, mine);
  if (typeof theirs === "number") c.peerReadSeq = Math.max(c.peerReadSeq, theirs);
  return { c, isNew: fresh && !known };
}

/** The one the member chats with: the visitor, or the member whose chat box they used. */
function peer(c) {
  return c.side === "member" ? c.visitor : { id: "", display_name: c.memberName || "Member", verified: true };
}

function sortedConversations() {
  return [...state.conversations.values()].sort((a, b) => {
    const byTime = (b.startedAt || "").localeCompare(a.startedAt || "");
    return byTime !== 0 ? byTime : b.id.localeCompare(a.id);
  });
}

function totalUnread() {
  let total = 0;
  for (const c of state.conversations.values()) total += c.unread;
  return total;
}
