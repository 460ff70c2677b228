/** One page of the member's conversations (after `cursor`), merged into the list. */
async function loadConversations(cursor) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) query.set("cursor", cursor);
  const page = await (await api("GET", `/v1/me/conversations?${query}`)).json();
  for (const view of page.conversations) upsertConversation(view, false);
  state.nextCursor = page.next_cursor;
  $("more-conversations").hidden = !state.nextCursor;
  renderList();
}

function updateTitle() {
  const unread = totalUnread();
  document.title = unread > 0 ? `(${unread}) ${TITLE}` : TITLE;
  if ("setAppBadge" in navigator) {
    (unread > 0 ? navigator.setAppBadge(unread) : navigator.clearAppBadge()).catch(() => {});
  }
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
