/** Where the operator session is kept, the page's title, and what a signed-out member is told. */
const SESSION_KEY = "palaver.console.session";
const TITLE = "Palaver console";
const ASK_FOR_LINK = "Ask your site for a new sign-in link: open your account on the site and choose to open the Palaver console.";

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
