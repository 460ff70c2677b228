/** The conversation shown as a plain-text transcript, to read or download. */
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
