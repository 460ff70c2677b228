/**
 * Everything the widget knows, in one object. The conversation (token to chatting) is
 * kept in localStorage under `storeKey` (app and endpoint), written only once the visitor
 * opens a chat; the rest lives as long as the page.
 */
function loadState(storeKey) {
  var stored = {};
  try { stored = JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { stored = {}; }
  // An expired session is forgotten; the name is kept for the next one.
  if (stored.token && stored.expires && stored.expires < Date.now()) stored = { name: stored.name };
  return {
    storeKey: storeKey,
    token: stored.token || "",
    expires: stored.expires || 0,
    conv: stored.conv || "",
    msgs: Array.isArray(stored.msgs) ? stored.msgs : [],
    pending: Array.isArray(stored.pending) ? stored.pending : [],
    readByMember: stored.readByMember || 0,
    name: stored.name || "",
    // The visitor asked for a chat (not only a session for "leave a message").
    chatting: !!stored.chatting,

    presence: null, // {status, status_text, display_name, accepts_chats}
    unavailable: false, // the endpoint is closed or unknown
    refused: false, // this page may not use the socket: presence comes from polling
    failed: [], // messages the server would not take
    closed: false, // the conversation has ended
    live: false, // the panel has been shown: new messages are announced
    readSent: 0, // the read mark last sent
    view: "", // what the panel shows: "name", "chat", "offline", "done" or nothing
    assertionRefused: false,
    autoStarted: false, // the chat was started with the CMS's assertion already
    busy: false, // a session or an offline message is on its way
    lastTyping: 0, // when `typing` was last sent
    pollTimer: 0,
    typingTimer: 0
  };
}

function save() {
  try {
    localStorage.setItem(state.storeKey, JSON.stringify({
      token: state.token, expires: state.expires, conv: state.conv,
      msgs: state.msgs.slice(-KEPT_MESSAGES), pending: state.pending,
      readByMember: state.readByMember, name: state.name, chatting: state.chatting
    }));
  } catch (e) { /* storage full or disabled: the chat still works for this page */ }
}

function forgetSession() {
  state.token = ""; state.expires = 0; state.conv = "";
  state.msgs = []; state.pending = []; state.readByMember = 0;
  state.chatting = false;
  state.failed = [];
}
