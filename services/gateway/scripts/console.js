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
 * The gateway assembles this script when it is built: each `// include:` line below is
 * replaced by that file of services/gateway/scripts/ (see the gateway's build.rs). The
 * socket is the one the widget uses too (socket.js); what the console knows is one state
 * object (console/state.js); this file wires the page and starts.
 */
"use strict";

(function () {
// include: socket.js
// include: console/ui.js
// include: console/session.js
// include: console/state.js
// include: console/api.js
// include: console/conversations.js
// include: console/messages.js
// include: console/composer.js
// include: console/connection.js
// include: console/frames.js
// include: console/actions.js
// include: console/transcript.js
// include: console/status.js
// include: console/offline.js
// include: console/notifications.js

/** Hooks the page's controls and the window's events the console follows. */
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
