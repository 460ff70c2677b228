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
