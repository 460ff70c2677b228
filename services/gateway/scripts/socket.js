/**
 * The WebSocket to the gateway (/v1/ws) that the widget and the console share: it opens
 * the socket and says `hello`, waits for `welcome` before anything else is sent, then
 * resumes each conversation the page holds from its last sequence number; it pings and
 * drops a socket whose `pong` does not come back in time (a dead connection the browser
 * has not noticed), and reconnects after a back-off with jitter, at once when the browser
 * comes back online.
 *
 * `on` is what the page does:
 * - hello(): the hello frame to open a connection with, or null while it must not connect;
 * - welcome(frame): the server's welcome; false refuses it, and the socket stops;
 * - held(): [[conversation, after_seq], ...], what to resume after each welcome;
 * - resumed(): after those resumes (to send again what waits for an answer);
 * - frame(frame): every other frame from the server;
 * - down(delay, wasUp): the connection is lost (welcomed or not); the next attempt is in
 *   `delay` ms.
 */
function palaverSocket(url, on) {
  var PING_EVERY_MS = 25000;
  var ANSWER_WITHIN_MS = 10000;
  var BACKOFF_MAX_MS = 30000;

  var ws = null;
  var up = false;
  var stopped = true;
  var attempts = 0;
  var retryTimer = 0;
  var pingTimer = 0;
  var answerTimer = 0;
  var joined = {};

  function connect() {
    stopped = false;
    clearTimeout(retryTimer);
    var helloFrame = on.hello();
    if (!helloFrame) return;
    close();
    var socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      retry();
      return;
    }
    ws = socket;
    socket.onopen = function () {
      socket.send(JSON.stringify(helloFrame));
      expectAnswer();
    };
    socket.onmessage = function (event) {
      if (ws !== socket) return;
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "pong") clearTimeout(answerTimer);
      else if (frame.type === "welcome") welcome(frame);
      else on.frame(frame);
    };
    socket.onclose = function () {
      if (ws === socket) lost();
    };
  }

  function welcome(frame) {
    clearTimeout(answerTimer);
    up = true;
    attempts = 0;
    if (on.welcome(frame) === false) {
      stop();
      return;
    }
    on.held().forEach(function (conversation) { resume(conversation[0], conversation[1]); });
    on.resumed();
    pingTimer = setInterval(function () {
      if (send({ type: "ping" })) expectAnswer();
    }, PING_EVERY_MS);
  }

  /** The next frame (welcome, pong) must come in time, or the socket is taken as dead. */
  function expectAnswer() {
    clearTimeout(answerTimer);
    answerTimer = setTimeout(lost, ANSWER_WITHIN_MS);
  }

  /** Forgets the socket without a word to the page. */
  function close() {
    clearInterval(pingTimer);
    clearTimeout(answerTimer);
    var socket = ws;
    ws = null;
    up = false;
    joined = {};
    if (socket) socket.close();
  }

  function lost() {
    var wasUp = up;
    close();
    if (!stopped) on.down(retry(), wasUp);
  }

  /** Schedules the next attempt, and answers its delay. */
  function retry() {
    clearTimeout(retryTimer);
    var base = Math.min(BACKOFF_MAX_MS, 1000 * Math.pow(2, attempts));
    attempts = Math.min(attempts + 1, 6);
    var delay = base / 2 + Math.random() * base / 2;
    retryTimer = setTimeout(connect, delay);
    return delay;
  }

  function stop() {
    stopped = true;
    clearTimeout(retryTimer);
    close();
  }

  /** Sends `frame` once the server has said welcome; answers whether it went. */
  function send(frame) {
    if (!up || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** Asks for every message of `conversation` after `after` and follows it live. */
  function resume(conversation, after) {
    var sent = send({ type: "resume", conversation: conversation, after_seq: after });
    if (sent) joined[conversation] = true;
    return sent;
  }

  window.addEventListener("online", function () {
    if (!ws && !stopped) connect();
  });

  return {
    connect: connect,
    stop: stop,
    send: send,
    resume: resume,
    /** Whether `conversation` was resumed on this connection. */
    joined: function (conversation) { return !!joined[conversation]; },
    /** Whether the server said welcome to this connection. */
    up: function () { return up; },
    /** Whether a connection is open or opening. */
    open: function () { return !!ws; }
  };
}
