/*
 * Palaver operator console: the member's messenger in the browser.
 *
 * Signs in with a login link (/console/login?token=…, exchanged once for an operator
 * access token kept in localStorage), then keeps one WebSocket (/v1/ws) open: it is a
 * presence device of the member (status from the selector), hears new chats
 * (`conversation` frames), and resumes each conversation it shows from the last
 * sequence number it holds, so nothing is missed across reconnects. Conversations,
 * transcripts, closing, blocking and left messages go through the member API with the
 * same token. Every text from the network is rendered with textContent, never as HTML.
 *
 * The socket is the one the widget uses too: the include line below is replaced by
 * services/gateway/scripts/socket.js when the gateway is built (see its build.rs).
 */
"use strict";

(function () {
  // include: socket.js

  const SESSION_KEY = "palaver.console.session";
  const STATUS_KEY = "palaver.console.status";
  const TITLE = "Palaver console";
  const PAGE_SIZE = 50;
  /** How many of a conversation's newest messages opening it loads; older on request. */
  const HISTORY_PAGE = 50;
  const TYPING_SEND_EVERY_MS = 3000;
  const TYPING_SHOWN_MS = 6000;
  const STATUS_LABELS = {
    online: "Online",
    away: "Away",
    idle: "Idle",
    be_right_back: "Be right back",
    busy: "Busy",
    out_to_lunch: "Out to lunch",
    on_the_phone: "On the phone",
    invisible: "Invisible",
    offline: "Offline",
  };

  const $ = (part, root) => (root || document).querySelector(`[data-part="${part}"]`);
  const el = (tag, props, children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  };

  /** Everything the console knows. */
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

  // ---------------------------------------------------------------- the session

  function loadSession() {
    try {
      const session = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
      if (session && session.access_token && session.expires_at > Date.now()) return session;
    } catch (_) {
      /* a damaged entry reads as no session */
    }
    localStorage.removeItem(SESSION_KEY);
    return null;
  }

  function saveSession(response) {
    const session = {
      access_token: response.access_token,
      expires_at: Date.now() + response.expires_in * 1000,
      member: response.member || {},
    };
    localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    return session;
  }

  /** Leaves the console for the gate, saying why. */
  function endSession(message) {
    localStorage.removeItem(SESSION_KEY);
    state.session = null;
    socket.stop();
    showGate(message);
  }

  function showGate(message) {
    $("gate-message").textContent = message;
    document.getElementById("console").hidden = true;
    document.getElementById("gate").hidden = false;
    document.title = TITLE;
  }

  const ASK_FOR_LINK = "Ask your site for a new sign-in link: open your account on the site and choose to open the Palaver console.";

  async function signInWithLink(token) {
    // The one-time token must not stay in the address bar or the history.
    history.replaceState(null, "", "/console");
    showGate("Signing you in…");
    try {
      const response = await fetch("/v1/operator-sessions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ login_token: token }),
      });
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        if (response.status === 401 || response.status === 400) {
          showGate(`This sign-in link is invalid, was used already or has expired. ${ASK_FOR_LINK}`);
        } else {
          showGate(`Signing in failed (${problem.detail || response.status}). Try the link again in a moment.`);
        }
        return null;
      }
      return saveSession(await response.json());
    } catch (_) {
      showGate("Palaver cannot be reached. Check your connection and open the sign-in link again.");
      return null;
    }
  }

  // ---------------------------------------------------------------- the member API

  class Unauthorized extends Error {}

  async function api(method, path, accept) {
    const headers = { authorization: `Bearer ${state.session.access_token}` };
    if (accept) headers.accept = accept;
    const response = await fetch(path, { method, headers });
    if (response.status === 401) {
      endSession(`Your session has ended. ${ASK_FOR_LINK}`);
      throw new Unauthorized();
    }
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      throw Object.assign(new Error(problem.detail || `the request failed (${response.status})`), { status: response.status });
    }
    return response;
  }

  async function loadConversations(cursor) {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) query.set("cursor", cursor);
    const page = await (await api("GET", `/v1/me/conversations?${query}`)).json();
    for (const view of page.conversations) upsertConversation(view, false);
    state.nextCursor = page.next_cursor;
    $("more-conversations").hidden = !state.nextCursor;
    renderList();
  }

  async function loadOfflineMessages() {
    const page = await (await api("GET", `/v1/me/offline-messages?limit=${PAGE_SIZE}`)).json();
    const list = $("offline-messages");
    list.replaceChildren();
    for (const message of page.offline_messages) {
      const email = message.email
        ? el("a", { href: `mailto:${message.email}`, text: message.email })
        : null;
      list.append(
        el("li", { class: "offline", "data-offline-message": message.id }, [
          el("div", { class: "meta" }, [
            el("span", { class: "name", text: message.visitor.display_name }),
            verifiedBadge(message.visitor.verified),
            el("time", { datetime: message.sent_at, text: formatTime(message.sent_at) }),
          ]),
          el("p", { class: "text", text: message.text }),
          email ? el("p", { class: "email" }, [document.createTextNode("Answer to "), email]) : null,
        ]),
      );
    }
    $("no-offline-messages").hidden = page.offline_messages.length > 0;
  }

  // ---------------------------------------------------------------- conversations

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

  function updateTitle() {
    const unread = totalUnread();
    document.title = unread > 0 ? `(${unread}) ${TITLE}` : TITLE;
    if ("setAppBadge" in navigator) {
      (unread > 0 ? navigator.setAppBadge(unread) : navigator.clearAppBadge()).catch(() => {});
    }
  }

  function verifiedBadge(verified) {
    return el("span", {
      class: verified ? "badge verified" : "badge unverified",
      "data-verified": verified ? "verified" : "unverified",
      title: verified ? "The site vouches for this visitor's name" : "The visitor chose this name; it is not checked",
      text: verified ? "verified" : "unverified",
    });
  }

  /** Which list item or tab has the focus, to give it back after a re-render. */
  function focusedItem() {
    const active = document.activeElement;
    if (!active) return null;
    const item = active.closest("[data-conversation]");
    if (item) return `[data-conversation="${CSS.escape(item.dataset.conversation)}"] button`;
    if (active.dataset && active.dataset.tab) return `[data-tab="${CSS.escape(active.dataset.tab)}"]`;
    return null;
  }

  function renderList() {
    const focused = focusedItem();
    const list = $("conversation-list");
    const items = sortedConversations().map((c) => {
      const unread = c.unread > 0
        ? el("span", { class: "unread", "data-part": "unread", text: String(c.unread), "aria-label": `${c.unread} unread` })
        : null;
      const button = el("button", {
        type: "button",
        class: "conversation-item",
        "aria-current": c.id === state.active ? "true" : false,
      }, [
        el("span", { class: "name", text: peer(c).display_name }),
        verifiedBadge(peer(c).verified),
        el("span", { class: `state ${c.state}`, text: c.blocked ? "blocked" : c.state }),
        el("time", { datetime: c.startedAt, text: formatTime(c.startedAt) }),
        unread,
      ]);
      button.addEventListener("click", () => openConversation(c.id, true));
      return el("li", { "data-conversation": c.id, "data-state": c.state, "data-unread": String(c.unread) }, [button]);
    });
    list.replaceChildren(...items);
    $("no-conversations").hidden = items.length > 0;
    renderTabs();
    updateTitle();
    if (focused) document.querySelector(focused)?.focus();
  }

  function renderTabs() {
    const tabs = $("tabs");
    const buttons = state.tabs.map((id) => {
      const c = state.conversations.get(id);
      const selected = id === state.active;
      const tab = el("button", {
        type: "button",
        role: "tab",
        class: "tab",
        "data-tab": id,
        "aria-selected": selected ? "true" : "false",
        "aria-controls": "main",
        tabindex: selected ? "0" : "-1",
      }, [
        el("span", { text: peer(c).display_name }),
        c.unread > 0 ? el("span", { class: "unread", text: String(c.unread) }) : null,
      ]);
      tab.addEventListener("click", () => openConversation(id, false));
      tab.addEventListener("keydown", (event) => {
        const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
        if (!step) return;
        const at = (state.tabs.indexOf(id) + step + state.tabs.length) % state.tabs.length;
        openConversation(state.tabs[at], false);
        tabs.querySelector(`[data-tab="${CSS.escape(state.tabs[at])}"]`)?.focus();
      });
      return tab;
    });
    tabs.replaceChildren(...buttons);
    tabs.hidden = buttons.length === 0;
  }

  /** Shows a conversation in a tab of its own, keeping the draft of the one left. */
  function openConversation(id, focusInput) {
    const input = $("message-input");
    if (state.active && state.active !== id) {
      const previous = state.conversations.get(state.active);
      if (previous) previous.draft = input.value;
    }
    const c = state.conversations.get(id);
    if (!c) return;
    if (!state.tabs.includes(id)) state.tabs.push(id);
    const switched = state.active !== id;
    state.active = id;
    hideTranscript();
    input.value = c.draft;
    const messages = $("messages");
    if (switched) messages.replaceChildren();
    document.body.classList.add("has-active");
    $("no-active").hidden = true;
    $("conversation").hidden = false;
    $("block-confirm").hidden = true;
    if (!c.historyLoaded) {
      c.historyLoaded = true;
      const from = Math.max(0, c.lastSeq - HISTORY_PAGE);
      c.heldSeq = Math.max(c.heldSeq, from);
      c.historyFrom = from;
      socket.resume(c.id, from);
    } else if (!socket.joined(c.id)) {
      socket.resume(c.id, c.heldSeq);
    }
    renderConversation();
    if (switched) messages.scrollTop = messages.scrollHeight;
    markRead(c);
    renderList();
    if (focusInput) input.focus();
  }

  function closeTab(id) {
    const at = state.tabs.indexOf(id);
    if (at < 0) return;
    const c = state.conversations.get(id);
    if (c && id === state.active) c.draft = $("message-input").value;
    state.tabs.splice(at, 1);
    if (state.active === id) {
      const next = state.tabs[Math.min(at, state.tabs.length - 1)];
      state.active = null;
      if (next) {
        openConversation(next, true);
        return;
      }
      $("conversation").hidden = true;
      $("no-active").hidden = false;
      document.body.classList.remove("has-active");
      const item = document.querySelector(`[data-conversation="${CSS.escape(id)}"] button`);
      item?.focus();
    }
    renderList();
  }

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

  // ---------------------------------------------------------------- the socket

  function setConnection(kind, text) {
    const node = $("connection");
    node.dataset.state = kind;
    node.textContent = text;
  }

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = palaverSocket(`${scheme}//${location.host}/v1/ws`, {
    hello,
    welcome: onWelcome,
    held,
    resumed: onResumed,
    frame: onFrame,
    down: onDown,
  });

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

  // ---------------------------------------------------------------- sending

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

  // ---------------------------------------------------------------- actions

  async function closeConversation() {
    const c = state.conversations.get(state.active);
    if (!c) return;
    try {
      const view = await (await api("POST", `/v1/me/conversations/${encodeURIComponent(c.id)}/close`)).json();
      upsertConversation(view, false);
      c.notice = "";
      renderList();
      renderConversation();
      announce(`The conversation with ${peer(c).display_name} is closed.`);
    } catch (error) {
      reportError(error);
    }
  }

  function askToBlock() {
    const c = state.conversations.get(state.active);
    if (!c) return;
    if (c.blocked) {
      unblock(c);
      return;
    }
    $("block-question").textContent =
      `Block ${peer(c).display_name}? They can no longer start chats with you, and their open chats with you are closed.`;
    $("block-confirm").hidden = false;
    $("block-yes").focus();
  }

  async function block() {
    const c = state.conversations.get(state.active);
    $("block-confirm").hidden = true;
    if (!c) return;
    try {
      await api("POST", `/v1/me/conversations/${encodeURIComponent(c.id)}/block`);
      for (const other of state.conversations.values()) {
        if (other.visitor.id === c.visitor.id) {
          other.blocked = true;
          other.state = "closed";
        }
      }
      renderList();
      renderConversation();
      announce(`${peer(c).display_name} is blocked.`);
      $("block").focus();
    } catch (error) {
      reportError(error);
    }
  }

  async function unblock(c) {
    try {
      await api("DELETE", `/v1/me/conversations/${encodeURIComponent(c.id)}/block`);
    } catch (error) {
      // 404: the block was lifted already (on another device), which is what was wanted.
      if (error.status !== 404) {
        reportError(error);
        return;
      }
    }
    for (const other of state.conversations.values()) {
      if (other.visitor.id === c.visitor.id) other.blocked = false;
    }
    renderList();
    renderConversation();
    announce(`${peer(c).display_name} may start chats again.`);
  }

  async function showTranscript() {
    const c = state.conversations.get(state.active);
    if (!c) return;
    try {
      const text = await (await api("GET", `/v1/me/conversations/${encodeURIComponent(c.id)}/transcript`, "text/plain")).text();
      if (state.transcriptUrl) URL.revokeObjectURL(state.transcriptUrl);
      state.transcriptUrl = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
      const link = $("transcript-download");
      link.href = state.transcriptUrl;
      link.setAttribute("download", `palaver-transcript-${c.id}.txt`);
      $("transcript-title").textContent = `Transcript: ${peer(c).display_name}`;
      $("transcript-text").textContent = text;
      $("conversation").hidden = true;
      $("transcript-view").hidden = false;
      $("transcript-text").focus();
    } catch (error) {
      reportError(error);
    }
  }

  function hideTranscript() {
    const view = $("transcript-view");
    if (view.hidden) return;
    view.hidden = true;
    if (state.active) $("conversation").hidden = false;
  }

  function setStatus(status) {
    state.status = status;
    localStorage.setItem(STATUS_KEY, status);
    socket.send({ type: "presence.set", status });
    announce(`Your status is ${STATUS_LABELS[status]}.`);
  }

  // ---------------------------------------------------------------- attention

  function announce(text) {
    const node = $("announcer");
    node.textContent = "";
    // A new node each time, so the same words are announced again.
    setTimeout(() => {
      node.textContent = text;
    }, 30);
  }

  function reportError(error) {
    if (error instanceof Unauthorized) return;
    const c = state.conversations.get(state.active);
    if (c) {
      c.notice = error.message;
      renderConversation();
    } else {
      announce(error.message);
    }
  }

  /** Unlocks WebAudio on the first gesture (browsers refuse sound before one). */
  function unlockAudio() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!state.audio) state.audio = new Context();
    if (state.audio.state === "suspended") state.audio.resume().catch(() => {});
  }

  /** A short two-note chime, made on the spot. */
  function chime() {
    const audio = state.audio;
    if (!audio || audio.state !== "running") return;
    const start = audio.currentTime + 0.01;
    [[660, 0], [880, 0.16]].forEach(([frequency, offset]) => {
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.15);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(start + offset);
      oscillator.stop(start + offset + 0.16);
    });
  }

  function announceNewChat(c) {
    chime();
    notify(`New chat: ${peer(c).display_name}`, peer(c).verified ? "Verified visitor" : "Unverified visitor", c.id);
    announce(`New chat from ${peer(c).display_name}`);
  }

  /** A desktop notification, through the service worker when there is one, so it
   * shows and can be clicked while the console is in the background. */
  async function notify(title, body, conversation) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const options = { body, tag: `palaver-${conversation}`, icon: "/console/icon.svg", data: { conversation } };
    try {
      const registration = "serviceWorker" in navigator ? await navigator.serviceWorker.getRegistration("/console") : null;
      if (registration) {
        await registration.showNotification(title, options);
        return;
      }
    } catch (_) {
      /* fall back to a page notification */
    }
    const notification = new Notification(title, options);
    notification.addEventListener("click", () => {
      window.focus();
      openConversation(conversation, true);
      notification.close();
    });
  }

  function renderNotificationButton() {
    const button = $("notifications");
    button.hidden = !("Notification" in window) || Notification.permission !== "default";
  }

  async function askForNotifications() {
    unlockAudio();
    try {
      await Notification.requestPermission();
    } finally {
      renderNotificationButton();
    }
  }

  // ---------------------------------------------------------------- time

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    const today = new Date();
    return date.toDateString() === today.toDateString()
      ? formatClock(iso)
      : date.toLocaleDateString(undefined, { day: "numeric", month: "short" });
  }

  function formatClock(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  // ---------------------------------------------------------------- start

  function wire() {
    $("status").value = state.status;
    $("status").addEventListener("change", (event) => setStatus(event.target.value));
    $("sign-out").addEventListener("click", () => endSession(`You signed out. ${ASK_FOR_LINK}`));
    $("notifications").addEventListener("click", askForNotifications);
    $("more-conversations").addEventListener("click", () => loadConversations(state.nextCursor).catch(reportError));
    $("refresh-offline").addEventListener("click", () => loadOfflineMessages().catch(reportError));
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      sendDraft();
    });
    const input = $("message-input");
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendDraft();
      }
    });
    input.addEventListener("input", onInput);
    $("close").addEventListener("click", closeConversation);
    $("block").addEventListener("click", askToBlock);
    $("block-yes").addEventListener("click", block);
    $("block-no").addEventListener("click", () => {
      $("block-confirm").hidden = true;
      $("block").focus();
    });
    $("transcript").addEventListener("click", showTranscript);
    $("older").addEventListener("click", loadOlder);
    $("transcript-close").addEventListener("click", () => {
      hideTranscript();
      $("message-input").focus();
    });
    $("close-tab").addEventListener("click", () => state.active && closeTab(state.active));
    $("back").addEventListener("click", () => {
      document.body.classList.remove("has-active");
      document.querySelector(`[data-conversation="${CSS.escape(state.active || "")}"] button`)?.focus();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !$("block-confirm").hidden) {
        $("block-confirm").hidden = true;
        $("block").focus();
      }
    });
    for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, unlockAudio, { passive: true });
    document.addEventListener("visibilitychange", () => {
      const c = state.conversations.get(state.active);
      if (c) markRead(c);
    });
    window.addEventListener("focus", () => {
      const c = state.conversations.get(state.active);
      if (c) markRead(c);
    });
    window.addEventListener("storage", (event) => {
      if (event.key === SESSION_KEY && !event.newValue && state.session) {
        endSession(`You signed out in another window. ${ASK_FOR_LINK}`);
      }
    });
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.addEventListener("message", (event) => {
        if (event.data && event.data.type === "open-conversation") openConversation(event.data.conversation, true);
      });
    }
  }

  async function start() {
    wire();
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/console/sw.js", { scope: "/console" }).catch(() => {});
    }
    const params = new URLSearchParams(location.search);
    const wanted = params.get("conversation");
    if (location.pathname === "/console/login") {
      const token = params.get("token");
      state.session = token ? await signInWithLink(token) : null;
      if (!token) showGate(`This sign-in link is incomplete. ${ASK_FOR_LINK}`);
      if (!state.session) return;
    } else {
      if (wanted) history.replaceState(null, "", "/console");
      state.session = loadSession();
      if (!state.session) {
        showGate(`You are not signed in, or your session has ended. ${ASK_FOR_LINK}`);
        return;
      }
    }
    document.getElementById("gate").hidden = true;
    document.getElementById("console").hidden = false;
    $("member-name").textContent = state.session.member.display_name || "";
    renderNotificationButton();
    renderList();
    try {
      await loadConversations(null);
    } catch (error) {
      if (error instanceof Unauthorized) return;
      reportError(error);
    }
    // Expired while open: back to the gate rather than failing call after call.
    const left = state.session.expires_at - Date.now();
    setTimeout(() => state.session && endSession(`Your session has ended. ${ASK_FOR_LINK}`), Math.min(left, 2 ** 31 - 1));
    socket.connect();
    if (wanted && state.conversations.has(wanted)) openConversation(wanted, true);
  }

  start();
})();
