/** The status selector's words, for announcing a change. */
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

function setStatus(status) {
  state.status = status;
  localStorage.setItem(STATUS_KEY, status);
  socket.send({ type: "presence.set", status });
  announce(`Your status is ${STATUS_LABELS[status]}.`);
}
