/** Closes the conversation shown. */
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
