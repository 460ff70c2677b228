/** How many conversations or left messages one page of the member API lists. */
const PAGE_SIZE = 50;

/** A call the API answered with 401: the session has ended, and the gate shows. */
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
