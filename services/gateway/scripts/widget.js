/*
 * Palaver chat widget. A page embeds
 *   <script src="https://GATEWAY/widget.js" data-app="APP_ID" data-endpoint="ce_…" async></script>
 * with optional data-visitor-assertion, data-theme (none|blue|green|orange|pink|purple|gray),
 * data-width, data-height, data-title, data-lang and data-mode (panel|inline|iframe).
 *
 * It renders into a shadow root (styles through constructable stylesheets, so a page CSP
 * that forbids inline styles does not block them) a presence badge that follows the
 * member's status live over the WebSocket (a watch-only socket until someone chats;
 * polling the presence JSON every 30 s when no socket can be opened), and a chat: a name
 * prompt (or the CMS's identity assertion), messages with delivery state, typing, and
 * "leave a message" while the member is offline. The conversation survives reloads
 * (localStorage, keyed by app and endpoint) and reconnects resume from the last sequence
 * number. Text is always rendered as text. In the frame page (widget/frame) it reads its
 * parameters from the page's URL and renders inline, full size.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script) return;

  var STRINGS = {
    en: {
      title: "Chat with {name}", chat: "Chat", leave: "Leave a message", close: "Close",
      unavailable: "Chat unavailable", nameLabel: "Your name", nameHint: "1–64 characters",
      nameInvalid: "Please enter a name of 1 to 64 characters.", start: "Start chat",
      messages: "Messages", message: "Message", send: "Send", you: "You",
      typing: "{name} is typing…", sending: "Sending…", sent: "Sent", seen: "Seen",
      failed: "Not sent", connecting: "Connecting…", reconnecting: "Connection lost. Reconnecting…",
      offlineIntro: "{name} is offline. Leave a message and they will get back to you.",
      offlineText: "Your message", email: "Your email (optional)", offlineSend: "Send message",
      offlineDone: "Thank you! Your message has been left for {name}.",
      textInvalid: "Please write a message (at most 4,000 characters).",
      emailInvalid: "Please enter a valid email address, or leave it empty.",
      assertionRefused: "We could not confirm who you are. You can still chat as a guest.",
      rateLimited: "Too many attempts. Please wait {s} s and try again.",
      failedGeneric: "Something went wrong. Please try again.",
      blocked: "You cannot send messages here.", expired: "Your chat session has expired. Please start again.",
      closed: "This chat has ended.", newChat: "New chat", from: "New message from {name}: {text}",
      offlineNow: "{name} is offline now; they will see your messages later."
    },
    de: {
      title: "Chat mit {name}", chat: "Chatten", leave: "Nachricht hinterlassen", close: "Schließen",
      unavailable: "Chat nicht verfügbar", nameLabel: "Ihr Name", nameHint: "1–64 Zeichen",
      nameInvalid: "Bitte geben Sie einen Namen mit 1 bis 64 Zeichen ein.", start: "Chat starten",
      messages: "Nachrichten", message: "Nachricht", send: "Senden", you: "Sie",
      typing: "{name} schreibt…", sending: "Wird gesendet…", sent: "Gesendet", seen: "Gelesen",
      failed: "Nicht gesendet", connecting: "Verbinde…", reconnecting: "Verbindung unterbrochen. Verbinde neu…",
      offlineIntro: "{name} ist offline. Hinterlassen Sie eine Nachricht, Sie erhalten eine Antwort.",
      offlineText: "Ihre Nachricht", email: "Ihre E-Mail-Adresse (optional)", offlineSend: "Nachricht senden",
      offlineDone: "Danke! Ihre Nachricht an {name} wurde hinterlassen.",
      textInvalid: "Bitte schreiben Sie eine Nachricht (höchstens 4.000 Zeichen).",
      emailInvalid: "Bitte geben Sie eine gültige E-Mail-Adresse ein oder lassen Sie das Feld leer.",
      assertionRefused: "Ihre Anmeldung konnte nicht bestätigt werden. Sie können als Gast chatten.",
      rateLimited: "Zu viele Versuche. Bitte warten Sie {s} s und versuchen Sie es erneut.",
      failedGeneric: "Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut.",
      blocked: "Sie können hier keine Nachrichten senden.", expired: "Ihre Chat-Sitzung ist abgelaufen. Bitte beginnen Sie neu.",
      closed: "Dieser Chat wurde beendet.", newChat: "Neuer Chat", from: "Neue Nachricht von {name}: {text}",
      offlineNow: "{name} ist jetzt offline und sieht Ihre Nachrichten später."
    },
    fr: {
      title: "Discuter avec {name}", chat: "Discuter", leave: "Laisser un message", close: "Fermer",
      unavailable: "Discussion indisponible", nameLabel: "Votre nom", nameHint: "1 à 64 caractères",
      nameInvalid: "Veuillez saisir un nom de 1 à 64 caractères.", start: "Commencer",
      messages: "Messages", message: "Message", send: "Envoyer", you: "Vous",
      typing: "{name} écrit…", sending: "Envoi…", sent: "Envoyé", seen: "Vu",
      failed: "Non envoyé", connecting: "Connexion…", reconnecting: "Connexion perdue. Reconnexion…",
      offlineIntro: "{name} est hors ligne. Laissez un message, vous aurez une réponse.",
      offlineText: "Votre message", email: "Votre e-mail (facultatif)", offlineSend: "Envoyer le message",
      offlineDone: "Merci ! Votre message a été laissé à {name}.",
      textInvalid: "Veuillez écrire un message (4 000 caractères au plus).",
      emailInvalid: "Veuillez saisir une adresse e-mail valide, ou laisser le champ vide.",
      assertionRefused: "Votre identité n’a pas pu être confirmée. Vous pouvez discuter en tant qu’invité.",
      rateLimited: "Trop de tentatives. Patientez {s} s puis réessayez.",
      failedGeneric: "Une erreur s’est produite. Veuillez réessayer.",
      blocked: "Vous ne pouvez pas envoyer de messages ici.", expired: "Votre session a expiré. Veuillez recommencer.",
      closed: "Cette discussion est terminée.", newChat: "Nouvelle discussion", from: "Nouveau message de {name} : {text}",
      offlineNow: "{name} est maintenant hors ligne et lira vos messages plus tard."
    },
    es: {
      title: "Chatear con {name}", chat: "Chatear", leave: "Dejar un mensaje", close: "Cerrar",
      unavailable: "Chat no disponible", nameLabel: "Tu nombre", nameHint: "De 1 a 64 caracteres",
      nameInvalid: "Escribe un nombre de 1 a 64 caracteres.", start: "Iniciar chat",
      messages: "Mensajes", message: "Mensaje", send: "Enviar", you: "Tú",
      typing: "{name} está escribiendo…", sending: "Enviando…", sent: "Enviado", seen: "Visto",
      failed: "No enviado", connecting: "Conectando…", reconnecting: "Conexión perdida. Reconectando…",
      offlineIntro: "{name} está desconectado. Deja un mensaje y te responderá.",
      offlineText: "Tu mensaje", email: "Tu correo electrónico (opcional)", offlineSend: "Enviar mensaje",
      offlineDone: "¡Gracias! Tu mensaje para {name} ha quedado guardado.",
      textInvalid: "Escribe un mensaje (como máximo 4000 caracteres).",
      emailInvalid: "Escribe un correo electrónico válido o deja el campo vacío.",
      assertionRefused: "No pudimos confirmar tu identidad. Puedes chatear como invitado.",
      rateLimited: "Demasiados intentos. Espera {s} s e inténtalo de nuevo.",
      failedGeneric: "Algo salió mal. Inténtalo de nuevo.",
      blocked: "No puedes enviar mensajes aquí.", expired: "Tu sesión de chat ha caducado. Empieza de nuevo.",
      closed: "Este chat ha terminado.", newChat: "Nuevo chat", from: "Nuevo mensaje de {name}: {text}",
      offlineNow: "{name} se ha desconectado; verá tus mensajes más tarde."
    },
    ru: {
      title: "Чат с {name}", chat: "Написать", leave: "Оставить сообщение", close: "Закрыть",
      unavailable: "Чат недоступен", nameLabel: "Ваше имя", nameHint: "От 1 до 64 символов",
      nameInvalid: "Введите имя длиной от 1 до 64 символов.", start: "Начать чат",
      messages: "Сообщения", message: "Сообщение", send: "Отправить", you: "Вы",
      typing: "{name} печатает…", sending: "Отправляется…", sent: "Отправлено", seen: "Прочитано",
      failed: "Не отправлено", connecting: "Подключение…", reconnecting: "Соединение потеряно. Переподключение…",
      offlineIntro: "{name} не в сети. Оставьте сообщение, и вам ответят.",
      offlineText: "Ваше сообщение", email: "Ваш e-mail (необязательно)", offlineSend: "Отправить сообщение",
      offlineDone: "Спасибо! Ваше сообщение для {name} сохранено.",
      textInvalid: "Напишите сообщение (не более 4000 символов).",
      emailInvalid: "Введите правильный адрес e-mail или оставьте поле пустым.",
      assertionRefused: "Не удалось подтвердить вашу личность. Вы можете писать как гость.",
      rateLimited: "Слишком много попыток. Повторите через {s} с.",
      failedGeneric: "Что-то пошло не так. Попробуйте ещё раз.",
      blocked: "Вы не можете отправлять сообщения здесь.", expired: "Сеанс чата истёк. Начните заново.",
      closed: "Этот чат завершён.", newChat: "Новый чат", from: "Новое сообщение от {name}: {text}",
      offlineNow: "{name} сейчас не в сети и прочтёт ваши сообщения позже."
    }
  };

  var THEMES = ["none", "blue", "green", "orange", "pink", "purple", "gray"];
  var MAX_TEXT = 4000;
  var KEPT_MESSAGES = 200;
  var POLL_MS = 30000;
  var TYPING_SEND_MS = 3000;
  var TYPING_SHOW_MS = 6000;

  var CSS = [
    // The page's rules apply to the host element too; !important ones from here win.
    ":host{all:initial!important;display:inline-block!important}",
    ":host([data-mode=inline]){display:block!important}",
    "*,*::before,*::after{box-sizing:border-box}",
    "[hidden]{display:none!important}",
    ".pv{--ac:#1d4ed8;--ac-fg:#fff;--bg:#fff;--fg:#1f2328;--muted:#57606a;--line:#d0d7de;--me:#e8eefc;--them:#f3f4f6;--focus:#1d4ed8;",
    "color:var(--fg);font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;text-align:left}",
    ".pv[data-theme=none]{--ac:#1f2328;--me:#eef0f2;--focus:#1f2328}",
    ".pv[data-theme=green]{--ac:#15803d;--me:#e7f5ec;--focus:#15803d}",
    ".pv[data-theme=orange]{--ac:#b93e0a;--me:#fdf0e8;--focus:#b93e0a}",
    ".pv[data-theme=pink]{--ac:#be185d;--me:#fcebf3;--focus:#be185d}",
    ".pv[data-theme=purple]{--ac:#7e22ce;--me:#f3e9fc;--focus:#7e22ce}",
    ".pv[data-theme=gray]{--ac:#4b5563;--me:#eef0f2;--focus:#374151}",
    "button,input,textarea{font:inherit;color:inherit;margin:0}",
    "button{cursor:pointer;border:1px solid var(--ac);background:var(--ac);color:var(--ac-fg);border-radius:6px;padding:6px 14px;min-height:32px}",
    "button:disabled{opacity:.6;cursor:default}",
    ":focus-visible{outline:3px solid var(--focus);outline-offset:2px}",
    "input,textarea{width:100%;border:1px solid #8c959f;border-radius:6px;padding:7px 9px;background:#fff}",
    "textarea{resize:none}",
    "label{display:block;font-weight:600;margin:0 0 4px}",
    ".hint{color:var(--muted);font-size:12px;margin:2px 0 0}",
    ".err{color:#b42318;font-size:13px;margin:4px 0 0}",
    ".bar{display:inline-flex;align-items:center;gap:10px;flex-wrap:wrap}",
    ".badge{display:inline-flex;align-items:center;gap:6px}",
    ".dot{width:10px;height:10px;border-radius:50%;background:#6b7280;flex:none;box-shadow:0 0 0 1px #fff}",
    ".dot[data-status=online]{background:#15803d}",
    ".dot[data-status=away],.dot[data-status=idle],.dot[data-status=be_right_back],.dot[data-status=out_to_lunch]{background:#b45309}",
    ".dot[data-status=busy],.dot[data-status=on_the_phone]{background:#b91c1c}",
    ".who{font-weight:600}",
    ".status{color:var(--muted)}",
    ".panel{display:flex;flex-direction:column;background:var(--bg);border:1px solid var(--line);border-radius:10px;overflow:hidden;",
    "width:var(--pv-w,360px);height:var(--pv-h,520px);max-width:100%}",
    ".floating{position:fixed;right:16px;bottom:16px;z-index:2147483000;max-height:calc(100vh - 32px);max-width:calc(100vw - 32px);box-shadow:0 8px 28px rgba(0,0,0,.22)}",
    ":host([data-mode=inline]) .panel{width:var(--pv-w,100%)}",
    ".head{display:flex;align-items:center;gap:8px;padding:10px 12px;background:var(--ac);color:var(--ac-fg)}",
    ".head .status{color:inherit}",
    ".head :focus-visible{outline-color:#fff}",
    ".head h2{font-size:15px;margin:0;flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    ".head button{background:transparent;border-color:transparent;color:inherit;font-size:20px;line-height:1;padding:2px 8px}",
    ".sub{display:flex;align-items:center;gap:6px;padding:6px 12px;border-bottom:1px solid var(--line);font-size:13px}",
    ".body{flex:1;min-height:0;display:flex;flex-direction:column}",
    ".pad{padding:12px;overflow:auto}",
    ".body>.pad{flex:1;min-height:0}",
    ".notice{margin:8px 12px 0;padding:8px 10px;border-radius:6px;background:#fff8e6;border:1px solid #e8c36a;color:#1f2328;font-size:13px}",
    ".list{list-style:none;margin:0;padding:12px;flex:1;overflow-y:auto;display:flex;flex-direction:column;gap:8px}",
    ".msg{max-width:85%;padding:7px 10px;border-radius:10px;background:var(--them);white-space:pre-wrap;overflow-wrap:anywhere;align-self:flex-start}",
    ".msg.me{background:var(--me);align-self:flex-end}",
    ".meta{display:block;font-size:11px;color:var(--muted);margin-top:2px}",
    ".typing{min-height:20px;padding:0 12px;font-size:12px;color:var(--muted)}",
    ".compose{display:flex;gap:8px;align-items:flex-end;padding:8px 12px 12px;border-top:1px solid var(--line)}",
    ".compose textarea{height:40px;max-height:120px}",
    ".stack>*+*{margin-top:12px}",
    ".sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}",
    "@media (max-width:480px){input,textarea{font-size:16px}.floating{left:0;right:0;bottom:0;top:0;width:100vw;height:100%;max-width:none;max-height:none;border-radius:0;border:0}}"
  ].join("\n");

  var frameMode = script.hasAttribute("data-frame");
  var params = frameMode ? new URLSearchParams(location.search) : null;
  function opt(name) {
    if (frameMode) return params.get(name) || "";
    return (script.getAttribute("data-" + name) || "").trim();
  }

  var gateway = new URL(script.src, location.href).origin;
  var config = {
    app: opt("app"),
    endpoint: opt("endpoint"),
    assertion: frameMode ? new URLSearchParams(location.hash.slice(1)).get("assertion") || "" : opt("visitor-assertion"),
    theme: THEMES.indexOf(opt("theme")) >= 0 ? opt("theme") : "blue",
    width: size(opt("width")),
    height: size(opt("height")),
    title: opt("title"),
    lang: language(opt("lang")),
    mode: frameMode ? "inline" : (["inline", "iframe"].indexOf(opt("mode")) >= 0 ? opt("mode") : "panel")
  };
  if (!config.app || !config.endpoint) {
    if (window.console) console.error("Palaver widget: data-app and data-endpoint are required");
    return;
  }

  /** A CSS length from data-width/data-height: a number (pixels) or a number with a unit. */
  function size(value) {
    var m = /^(\d+(?:\.\d+)?)(px|em|rem|%|vw|vh)?$/.exec(value);
    return m ? m[1] + (m[2] || "px") : "";
  }

  function language(given) {
    var candidates = [given, document.documentElement.lang, navigator.language];
    for (var i = 0; i < candidates.length; i++) {
      var primary = (candidates[i] || "").toLowerCase().split(/[-_]/)[0];
      if (STRINGS[primary]) return primary;
    }
    return "en";
  }

  var S = STRINGS[config.lang];
  function t(key, values) {
    return S[key].replace(/\{(\w+)\}/g, function (_, name) {
      return values && values[name] != null ? String(values[name]) : "";
    });
  }

  function place(node) {
    if (frameMode) {
      document.documentElement.style.height = "100%";
      document.body.style.margin = "0";
      document.body.style.height = "100%";
      document.body.appendChild(node);
    } else if (script.parentNode && script.parentNode !== document.head) {
      script.parentNode.insertBefore(node, script.nextSibling);
    } else if (document.body) {
      document.body.appendChild(node);
    } else {
      document.addEventListener("DOMContentLoaded", function () { document.body.appendChild(node); });
    }
  }

  if (config.mode === "iframe") {
    var frame = document.createElement("iframe");
    var query = new URLSearchParams({ app: config.app, endpoint: config.endpoint, theme: config.theme, lang: config.lang });
    if (config.title) query.set("title", config.title);
    // The assertion goes in the fragment, which never reaches a server or its logs.
    frame.src = gateway + "/widget/frame?" + query + (config.assertion ? "#" + new URLSearchParams({ assertion: config.assertion }) : "");
    frame.title = config.title || t("chat");
    frame.className = "palaver-widget";
    frame.setAttribute("data-endpoint", config.endpoint);
    frame.style.border = "0";
    frame.style.width = config.width || "360px";
    frame.style.height = config.height || "520px";
    frame.style.maxWidth = "100%";
    place(frame);
    return;
  }

  // ---- the DOM ----

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    for (var key in attrs || {}) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "class") node.className = attrs[key];
      else if (attrs[key] === true) node.setAttribute(key, "");
      else if (attrs[key] !== false && attrs[key] != null) node.setAttribute(key, attrs[key]);
    }
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  var host = el("div", { class: "palaver-widget", "data-endpoint": config.endpoint, "data-mode": config.mode });
  if (config.width) host.style.setProperty("--pv-w", config.width);
  if (config.height) host.style.setProperty("--pv-h", config.height);
  if (frameMode) {
    host.style.setProperty("--pv-w", "100%");
    host.style.setProperty("--pv-h", "100vh");
  }
  var root = host.attachShadow({ mode: "open" });
  if (root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === "function" && CSSStyleSheet.prototype.replaceSync) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.appendChild(el("style", { text: CSS }));
  }

  var uid = Math.random().toString(36).slice(2, 8);
  function id(name) { return "pv-" + uid + "-" + name; }

  function badge(prefix) {
    return el("span", { class: "badge", "data-part": prefix + "badge" }, [
      el("span", { class: "dot", "data-part": prefix + "dot", "aria-hidden": "true" }),
      el("span", { class: "who", "data-part": prefix + "name" }),
      el("span", { class: "status", "data-part": prefix + "status" })
    ]);
  }
  function field(label, control, hint, error) {
    return el("div", {}, [el("label", { for: control.id, text: label }), control, hint, error]);
  }

  var ui = {};
  ui.open = el("button", { type: "button", "data-part": "open", "aria-expanded": "false", "aria-controls": id("panel"), hidden: true });
  ui.bar = el("div", { class: "bar", "data-part": "bar" }, [badge(""), ui.open]);
  ui.title = el("h2", { id: id("title"), "data-part": "title" });
  ui.close = el("button", { type: "button", "data-part": "close", "aria-label": t("close"), text: "×" });
  ui.notice = el("div", { class: "notice", "data-part": "notice", role: "status", hidden: true });

  ui.nameInput = el("input", { id: id("name"), "data-part": "name-input", autocomplete: "name", maxlength: "64", "aria-describedby": id("name-hint") + " " + id("name-err") });
  ui.nameErr = el("p", { class: "err", id: id("name-err"), "data-part": "name-error" });
  ui.start = el("button", { type: "submit", "data-part": "start", text: t("start") });
  ui.nameForm = el("form", { class: "pad stack", "data-part": "name-form", novalidate: true, hidden: true }, [
    field(t("nameLabel"), ui.nameInput, el("p", { class: "hint", id: id("name-hint"), text: t("nameHint") }), ui.nameErr),
    ui.start
  ]);

  ui.messages = el("ol", { class: "list", "data-part": "messages", "aria-label": t("messages"), tabindex: "0" });
  ui.typing = el("div", { class: "typing", "data-part": "typing" });
  ui.messageInput = el("textarea", { id: id("msg"), "data-part": "message-input", maxlength: String(MAX_TEXT), rows: "1" });
  ui.send = el("button", { type: "submit", "data-part": "send", text: t("send") });
  ui.compose = el("form", { class: "compose", "data-part": "compose", novalidate: true }, [
    el("label", { for: ui.messageInput.id, class: "sr", text: t("message") }), ui.messageInput, ui.send
  ]);
  ui.newChat = el("button", { type: "button", "data-part": "new-chat", text: t("newChat") });
  ui.newChatRow = el("div", { class: "compose", hidden: true }, [ui.newChat]);
  ui.chat = el("div", { class: "body", "data-part": "chat", hidden: true }, [ui.messages, ui.typing, ui.compose, ui.newChatRow]);

  ui.offlineIntro = el("p", { "data-part": "offline-intro" });
  ui.offlineName = el("input", { id: id("oname"), "data-part": "offline-name", autocomplete: "name", maxlength: "64", "aria-describedby": id("oname-err") });
  ui.offlineNameErr = el("p", { class: "err", id: id("oname-err") });
  ui.offlineNameField = field(t("nameLabel"), ui.offlineName, null, ui.offlineNameErr);
  ui.offlineText = el("textarea", { id: id("otext"), "data-part": "offline-text", rows: "4", maxlength: String(MAX_TEXT), "aria-describedby": id("otext-err") });
  ui.offlineTextErr = el("p", { class: "err", id: id("otext-err") });
  ui.offlineEmail = el("input", { id: id("oemail"), type: "email", "data-part": "offline-email", autocomplete: "email", "aria-describedby": id("oemail-err") });
  ui.offlineEmailErr = el("p", { class: "err", id: id("oemail-err") });
  ui.offlineSend = el("button", { type: "submit", "data-part": "offline-send", text: t("offlineSend") });
  ui.offlineForm = el("form", { class: "pad stack", "data-part": "offline-form", novalidate: true, hidden: true }, [
    ui.offlineIntro, ui.offlineNameField,
    field(t("offlineText"), ui.offlineText, null, ui.offlineTextErr),
    field(t("email"), ui.offlineEmail, null, ui.offlineEmailErr),
    ui.offlineSend
  ]);
  ui.offlineDone = el("p", { class: "pad", "data-part": "offline-done", tabindex: "-1", hidden: true });

  ui.panel = el("section", { class: "panel", id: id("panel"), "data-part": "panel", "aria-labelledby": id("title") }, [
    el("div", { class: "head" }, [ui.title, config.mode === "panel" ? ui.close : null]),
    el("div", { class: "sub" }, [badge(config.mode === "panel" ? "panel-" : "")]),
    ui.notice,
    el("div", { class: "body" }, [ui.nameForm, ui.chat, ui.offlineForm, ui.offlineDone])
  ]);
  ui.live = el("div", { class: "sr", "aria-live": "polite", "data-part": "live" });
  var wrap = el("div", { class: "pv", "data-theme": config.theme }, [config.mode === "panel" ? ui.bar : null, ui.panel, ui.live]);
  if (config.mode === "panel") {
    ui.panel.classList.add("floating");
    ui.panel.setAttribute("role", "dialog");
    ui.panel.hidden = true;
  } else {
    ui.panel.setAttribute("role", "region");
  }
  root.appendChild(wrap);
  place(host);

  function parts(name) { return root.querySelectorAll("[data-part=" + name + "],[data-part=panel-" + name + "]"); }

  // ---- stored state ----

  var storeKey = "palaver:" + config.app + ":" + config.endpoint;
  var stored = {};
  try { stored = JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { stored = {}; }
  var state = {
    token: stored.token || "",
    expires: stored.expires || 0,
    conv: stored.conv || "",
    msgs: Array.isArray(stored.msgs) ? stored.msgs : [],
    pending: Array.isArray(stored.pending) ? stored.pending : [],
    readByMember: stored.readByMember || 0,
    name: stored.name || "",
    // The visitor asked for a chat (not only a session for "leave a message").
    chatting: !!stored.chatting
  };
  if (state.token && state.expires && state.expires < Date.now()) forgetSession();

  function save() {
    try {
      localStorage.setItem(storeKey, JSON.stringify({
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
    failed = [];
  }

  // ---- presence ----

  var presence = null; // {status, status_text, display_name, accepts_chats}
  var unavailable = false;

  function showPresence() {
    var name = presence ? presence.display_name : "";
    parts("dot").forEach(function (d) { d.setAttribute("data-status", unavailable || !presence ? "offline" : presence.status); });
    parts("name").forEach(function (n) { n.textContent = name; });
    parts("status").forEach(function (s) { s.textContent = unavailable ? t("unavailable") : presence ? presence.status_text : ""; });
    ui.title.textContent = config.title || t("title", { name: name });
    var accepts = !unavailable && presence && presence.accepts_chats;
    ui.open.hidden = unavailable || !presence;
    ui.open.textContent = accepts ? t("chat") : t("leave");
    ui.open.setAttribute("aria-label", (accepts ? t("chat") : t("leave")) + (name ? " — " + name : ""));
    host.setAttribute("data-status", unavailable ? "unavailable" : presence ? presence.status : "");
    render();
  }

  var pollTimer = 0;
  function poll() {
    clearTimeout(pollTimer);
    fetch(gateway + "/v1/endpoints/" + encodeURIComponent(config.endpoint) + "/presence?lang=" + config.lang, { cache: "no-cache" })
      .then(function (response) {
        if (response.status === 404) { unavailable = true; showPresence(); return null; }
        return response.ok ? response.json() : null;
      })
      .then(function (body) {
        if (!body) return;
        var first = !presence;
        unavailable = false;
        presence = body;
        showPresence();
        if (first || !sock) connect();
      })
      .catch(function () { /* the network is down: try again at the next poll */ })
      .then(function () { if (!welcomed) pollTimer = setTimeout(poll, POLL_MS); });
  }

  // ---- the WebSocket ----

  var sock = null, welcomed = false, attempts = 0, retryTimer = 0, refused = false;

  function connect() {
    clearTimeout(retryTimer);
    if (refused || unavailable) return;
    if (sock) { var old = sock; sock = null; old.close(); }
    welcomed = false;
    var ws;
    try {
      ws = new WebSocket(gateway.replace(/^http/, "ws") + "/v1/ws");
    } catch (e) {
      retry();
      return;
    }
    sock = ws;
    ws.onopen = function () {
      ws.send(JSON.stringify(state.token
        ? { type: "hello", token: state.token, lang: config.lang }
        : { type: "hello", app_id: config.app, lang: config.lang }));
    };
    ws.onmessage = function (event) {
      if (sock !== ws) return;
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      onFrame(frame);
    };
    ws.onclose = function () {
      if (sock !== ws) return;
      sock = null;
      var wasUp = welcomed;
      welcomed = false;
      if (wasUp && state.conv) note(t("reconnecting"), "connection");
      if (!pollTimer) pollTimer = setTimeout(poll, POLL_MS);
      retry();
    };
  }

  function retry() {
    if (refused) return;
    clearTimeout(retryTimer);
    var delay = Math.min(30000, 1000 * Math.pow(2, attempts++)) * (0.75 + Math.random() / 2);
    retryTimer = setTimeout(connect, delay);
  }

  function emit(frame) {
    if (sock && welcomed && sock.readyState === 1) { sock.send(JSON.stringify(frame)); return true; }
    return false;
  }

  function onFrame(f) {
    switch (f.type) {
      case "welcome":
        welcomed = true;
        attempts = 0;
        clearTimeout(pollTimer);
        pollTimer = 0;
        clearNote("connection");
        emit({ type: "presence.watch", endpoints: [config.endpoint] });
        if (state.token) {
          if (!state.conv) {
            if (state.chatting) emit({ type: "conversation.open", endpoint: config.endpoint });
          } else {
            emit({ type: "resume", conversation: state.conv, after_seq: lastSeq() });
            flushPending();
          }
        }
        break;
      case "presence":
        if (f.endpoint !== config.endpoint) break;
        var wasAccepting = presence && presence.accepts_chats;
        presence = presence || { display_name: "" };
        presence.status = f.status;
        presence.status_text = f.status_text;
        presence.accepts_chats = f.accepts_chats;
        unavailable = false;
        if (wasAccepting && !f.accepts_chats && state.conv) note(t("offlineNow", { name: presence.display_name }), "offline");
        if (f.accepts_chats) clearNote("offline");
        showPresence();
        break;
      case "conversation":
        if (f.endpoint !== config.endpoint) break;
        if (f.id !== state.conv) {
          state.conv = f.id;
          state.msgs = [];
          state.readByMember = 0;
          readSent = 0;
          save();
        }
        closed = f.state === "closed";
        if (closed) note(t("closed"), "closed");
        emit({ type: "resume", conversation: f.id, after_seq: lastSeq() });
        flushPending();
        renderMessages();
        render();
        break;
      case "message":
        if (f.conversation === state.conv) onMessage(f);
        break;
      case "message.ack":
        onAck(f);
        break;
      case "typing":
        if (f.conversation === state.conv && f.from === "member") showTyping();
        break;
      case "read":
        if (f.conversation === state.conv && f.by === "member" && f.seq > state.readByMember) {
          state.readByMember = f.seq;
          save();
          renderMessages();
        }
        break;
      case "error":
        onError(f);
        break;
    }
  }

  function onError(f) {
    if (!welcomed) {
      if (f.code === "token_expired" || f.code === "unauthenticated") {
        if (state.token) {
          forgetSession();
          save();
          note(t("expired"));
          renderMessages();
          render();
          connect();
        }
        return;
      }
      if (f.code === "origin_not_allowed" || f.code === "not_found") {
        // This page may not use the socket: presence comes from polling.
        refused = true;
        if (!pollTimer) pollTimer = setTimeout(poll, POLL_MS);
      }
      return;
    }
    if (f.ref === config.endpoint && (f.code === "not_found" || f.code === "endpoint_closed")) {
      unavailable = true;
      showPresence();
      return;
    }
    var pending = state.pending.filter(function (p) { return p.cid === f.ref; })[0];
    if (pending) {
      if (f.code === "rate_limited") {
        var wait = +((/(\d+)\s*s\b/.exec(f.message || "") || [])[1] || 2);
        note(t("rateLimited", { s: wait }), "rate");
        setTimeout(flushPending, wait * 1000);
      } else {
        state.pending = state.pending.filter(function (p) { return p !== pending; });
        pending.failed = true;
        failed.push(pending);
        save();
        if (f.code === "failed_precondition") closed = true;
        note(closed ? t("closed") : f.code === "visitor_blocked" ? t("blocked") : t("failedGeneric"), closed ? "closed" : "");
        renderMessages();
        render();
      }
      return;
    }
    if (f.ref && f.ref === state.conv && (f.code === "not_found" || f.code === "permission_denied")) {
      // The conversation is gone (erased): open a new one.
      state.conv = "";
      state.msgs = [];
      save();
      renderMessages();
      emit({ type: "conversation.open", endpoint: config.endpoint });
      return;
    }
    if (f.ref === config.endpoint) {
      note(f.code === "visitor_blocked" ? t("blocked") : f.code === "rate_limited" ? t("rateLimited", { s: 60 }) : t("failedGeneric"));
    }
  }

  // ---- messages ----

  var failed = [];
  var closed = false;
  var live = false;

  function lastSeq() {
    return state.msgs.reduce(function (max, m) { return m.seq > max ? m.seq : max; }, 0);
  }

  function onMessage(f) {
    if (state.msgs.some(function (m) { return m.seq === f.seq; })) return;
    state.pending = state.pending.filter(function (p) { return !(f.from === "visitor" && p.cid === f.client_id); });
    state.msgs.push({ seq: f.seq, id: f.id, cid: f.client_id, from: f.from, text: f.text, at: f.sent_at });
    state.msgs.sort(function (a, b) { return a.seq - b.seq; });
    save();
    if (f.from === "member") {
      hideTyping();
      if (live) ui.live.textContent = t("from", { name: presence ? presence.display_name : "", text: f.text });
    }
    renderMessages();
    markRead();
  }

  function onAck(f) {
    var pending = state.pending.filter(function (p) { return p.cid === f.client_id; })[0];
    if (!pending) return;
    clearNote("rate");
    onMessage({ seq: f.seq, id: f.id, client_id: f.client_id, from: "visitor", text: pending.text, sent_at: null });
  }

  function sendText(text) {
    var cid = crypto.randomUUID ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2);
    state.pending.push({ cid: cid, text: text });
    if (state.conv) emit({ type: "message.send", conversation: state.conv, client_id: cid, text: text });
    else if (!state.chatting) {
      // A session made for "leave a message" becomes a chat with its first message.
      state.chatting = true;
      emit({ type: "conversation.open", endpoint: config.endpoint });
    }
    save();
    renderMessages();
  }

  function flushPending() {
    if (!state.conv) return;
    state.pending.forEach(function (p) {
      emit({ type: "message.send", conversation: state.conv, client_id: p.cid, text: p.text });
    });
  }

  var readSent = 0;
  function markRead() {
    if (!state.conv || document.hidden || !panelVisible()) return;
    var seq = state.msgs.reduce(function (max, m) { return m.from === "member" && m.seq > max ? m.seq : max; }, 0);
    if (seq > readSent && emit({ type: "read", conversation: state.conv, seq: seq })) readSent = seq;
  }

  function stateOf(m) {
    if (m.failed) return t("failed");
    if (!m.seq) return t("sending");
    return m.seq <= state.readByMember ? t("seen") : t("sent");
  }

  var shown = {};
  function renderMessages() {
    var all = state.msgs.concat(state.pending, failed);
    var wanted = {};
    var atBottom = ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 40;
    all.forEach(function (m) {
      var key = m.cid || "s" + m.seq;
      wanted[key] = true;
      var item = shown[key];
      if (!item) {
        var mine = m.from !== "member";
        item = el("li", { class: "msg" + (mine ? " me" : ""), "data-part": "message", "data-from": mine ? "visitor" : "member" }, [
          el("span", { class: "sr", text: (mine ? t("you") : presence ? presence.display_name : "") + ": " }),
          el("span", { class: "text", "data-part": "message-text", text: m.text }),
          el("span", { class: "meta", "data-part": "message-state" })
        ]);
        shown[key] = item;
      }
      if (m.seq) item.setAttribute("data-seq", m.seq);
      if (m.from !== "member") {
        var meta = item.lastChild;
        meta.textContent = stateOf(m);
        item.setAttribute("data-state", m.failed ? "failed" : !m.seq ? "sending" : m.seq <= state.readByMember ? "seen" : "sent");
      }
      ui.messages.appendChild(item);
    });
    Object.keys(shown).forEach(function (key) {
      if (!wanted[key]) { shown[key].remove(); delete shown[key]; }
    });
    if (atBottom || live) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  var typingTimer = 0;
  function showTyping() {
    ui.typing.textContent = t("typing", { name: presence ? presence.display_name : "" });
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
  }
  function hideTyping() {
    clearTimeout(typingTimer);
    ui.typing.textContent = "";
  }

  // ---- views ----

  var view = "";
  var assertionRefused = false;
  var autoStarted = false;
  var busy = false;

  /** Shows `text` in the notice; `kind` lets a later event clear only its own notice. */
  function note(text, kind) {
    ui.notice.textContent = text;
    ui.notice.hidden = !text;
    ui.notice.setAttribute("data-kind", kind || "");
  }
  function clearNote(kind) { if (!kind || ui.notice.getAttribute("data-kind") === kind) note(""); }

  /** What the panel shows: the chat once there is one, else what the presence allows. */
  function chooseView() {
    if (state.token && (state.conv || state.chatting)) view = "chat";
    else if (view === "done") return;
    else if (unavailable || !presence) view = "";
    else if (!presence.accepts_chats) view = "offline";
    else view = state.token ? "chat" : "name";
  }

  function render() {
    chooseView();
    var current = view;
    ui.nameForm.hidden = current !== "name";
    ui.chat.hidden = current !== "chat";
    ui.offlineForm.hidden = current !== "offline";
    ui.offlineDone.hidden = current !== "done";
    ui.offlineNameField.hidden = !!state.token || (!!config.assertion && !assertionRefused);
    ui.offlineIntro.textContent = t("offlineIntro", { name: presence ? presence.display_name : "" });
    ui.compose.hidden = closed;
    ui.newChatRow.hidden = !closed;
    ui.start.disabled = busy;
    ui.offlineSend.disabled = busy;
    if (!ui.nameInput.value && state.name) ui.nameInput.value = state.name;
    if (!ui.offlineName.value && state.name) ui.offlineName.value = state.name;
    if (view === "name" && panelVisible() && config.assertion && !assertionRefused && !state.token && !busy && !autoStarted) {
      autoStarted = true;
      startChat(null);
    }
  }

  // ---- panel ----

  function panelVisible() { return config.mode !== "panel" || !ui.panel.hidden; }

  function openPanel() {
    ui.panel.hidden = false;
    ui.open.setAttribute("aria-expanded", "true");
    live = true;
    render();
    renderMessages();
    markRead();
    focusView();
  }

  function closePanel() {
    if (config.mode !== "panel") return;
    ui.panel.hidden = true;
    ui.open.setAttribute("aria-expanded", "false");
    ui.open.focus();
  }

  function focusView() {
    var target = {
      name: ui.nameInput, chat: ui.messageInput, done: ui.offlineDone,
      offline: ui.offlineNameField.hidden ? ui.offlineText : ui.offlineName
    }[view];
    if (target && !target.closest("[hidden]")) target.focus();
  }

  ui.open.addEventListener("click", function () { if (ui.panel.hidden) openPanel(); else closePanel(); });
  ui.close.addEventListener("click", closePanel);
  ui.panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.stopPropagation(); closePanel(); }
  });

  // ---- sessions ----

  function problemText(response, body) {
    var code = body && body.code;
    if (response.status === 429 || code === "rate_limited") {
      return t("rateLimited", { s: response.headers.get("retry-after") || 60 });
    }
    if (code === "visitor_blocked") return t("blocked");
    return t("failedGeneric");
  }

  function post(path, body) {
    return fetch(gateway + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (json) {
          return { response: response, body: json };
        });
      });
  }

  /** A visitor session: with the CMS's assertion, or the anonymous `name`. */
  function createSession(name) {
    var body = { app_id: config.app, endpoint: config.endpoint };
    if (name == null) body.assertion = config.assertion;
    else body.display_name = name;
    return post("/v1/visitor-sessions", body).then(function (answer) {
      if (answer.response.status === 201) {
        forgetSession();
        state.token = answer.body.session_token;
        state.expires = Date.now() + (answer.body.expires_in || 0) * 1000;
        if (name != null) state.name = name;
        save();
        return true;
      }
      if (answer.body && answer.body.code === "invalid_assertion") {
        assertionRefused = true;
        note(t("assertionRefused"));
        return false;
      }
      if (answer.body && (answer.body.code === "endpoint_closed" || answer.body.code === "not_found")) {
        unavailable = true;
        showPresence();
      }
      note(problemText(answer.response, answer.body));
      return false;
    });
  }

  function validName(input, error) {
    var name = input.value.trim();
    var ok = name.length >= 1 && Array.from(name).length <= 64;
    error.textContent = ok ? "" : t("nameInvalid");
    input.setAttribute("aria-invalid", ok ? "false" : "true");
    return ok ? name : null;
  }

  function startChat(name) {
    busy = true;
    render();
    note(t("connecting"));
    createSession(name).then(function (ok) {
      busy = false;
      closed = false;
      if (ok) {
        state.chatting = true;
        save();
        clearNote();
        connect();
      }
      render();
      focusView();
    }, function () {
      busy = false;
      note(t("failedGeneric"));
      render();
    });
  }

  ui.nameForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    var name = validName(ui.nameInput, ui.nameErr);
    if (name == null) { ui.nameInput.focus(); return; }
    startChat(name);
  });

  ui.compose.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = ui.messageInput.value.trim();
    if (!text || text.length > MAX_TEXT) return;
    ui.messageInput.value = "";
    lastTyping = 0;
    sendText(text);
  });
  ui.messageInput.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.compose.requestSubmit();
    }
  });
  var lastTyping = 0;
  ui.messageInput.addEventListener("input", function () {
    if (!state.conv || !ui.messageInput.value) return;
    var now = Date.now();
    if (now - lastTyping >= TYPING_SEND_MS && emit({ type: "typing", conversation: state.conv })) lastTyping = now;
  });
  ui.newChat.addEventListener("click", function () {
    state.conv = "";
    state.msgs = [];
    failed = [];
    closed = false;
    clearNote();
    save();
    renderMessages();
    if (!emit({ type: "conversation.open", endpoint: config.endpoint })) connect();
    render();
    ui.messageInput.focus();
  });

  ui.offlineForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    var text = ui.offlineText.value.trim();
    var email = ui.offlineEmail.value.trim();
    var textOk = text.length > 0 && text.length <= MAX_TEXT;
    var emailOk = !email || /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email);
    ui.offlineTextErr.textContent = textOk ? "" : t("textInvalid");
    ui.offlineText.setAttribute("aria-invalid", textOk ? "false" : "true");
    ui.offlineEmailErr.textContent = emailOk ? "" : t("emailInvalid");
    ui.offlineEmail.setAttribute("aria-invalid", emailOk ? "false" : "true");
    var name = null;
    if (!ui.offlineNameField.hidden) {
      name = validName(ui.offlineName, ui.offlineNameErr);
      if (name == null) { ui.offlineName.focus(); return; }
    }
    if (!textOk) { ui.offlineText.focus(); return; }
    if (!emailOk) { ui.offlineEmail.focus(); return; }
    busy = true;
    render();
    var session = state.token ? Promise.resolve(true) : createSession(name);
    session.then(function (ok) {
      if (!ok) return null;
      var body = { session_token: state.token, text: text };
      if (email) body.email = email;
      return post("/v1/endpoints/" + encodeURIComponent(config.endpoint) + "/offline-messages", body);
    }).then(function (answer) {
      busy = false;
      if (answer && answer.response.status === 202) {
        clearNote();
        ui.offlineText.value = "";
        ui.offlineDone.textContent = t("offlineDone", { name: presence ? presence.display_name : "" });
        view = "done";
        render();
        ui.offlineDone.focus();
        return;
      }
      if (answer && answer.body && (answer.body.code === "token_expired" || answer.body.code === "unauthenticated")) {
        forgetSession();
        save();
        note(t("expired"));
      } else if (answer) {
        note(problemText(answer.response, answer.body));
      }
      render();
    }, function () {
      busy = false;
      note(t("failedGeneric"));
      render();
    });
  });

  document.addEventListener("visibilitychange", markRead);

  // ---- start ----

  renderMessages();
  showPresence();
  if (config.mode !== "panel") live = true;
  poll();
})();
