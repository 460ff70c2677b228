/** Puts `node` where the widget goes: after its script tag, or as the frame page's body. */
function place(node) {
  if (config.frame) {
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

/** The iframe of data-mode=iframe: the widget in the gateway's frame page. */
function widgetFrame() {
  var frame = document.createElement("iframe");
  var query = new URLSearchParams({ app: config.app, endpoint: config.endpoint, theme: config.theme, lang: config.lang });
  if (config.title) query.set("title", config.title);
  // The assertion goes in the fragment, which never reaches a server or its logs.
  frame.src = config.gateway + "/widget/frame?" + query + (config.assertion ? "#" + new URLSearchParams({ assertion: config.assertion }) : "");
  frame.title = config.title || t("chat");
  frame.className = "palaver-widget";
  frame.setAttribute("data-endpoint", config.endpoint);
  frame.style.border = "0";
  frame.style.width = config.width || "360px";
  frame.style.height = config.height || "520px";
  frame.style.maxWidth = "100%";
  return frame;
}

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

/**
 * The widget's elements, in a shadow root of the host element (styles through a
 * constructable stylesheet, so a page CSP that forbids inline styles does not block them).
 * Each part the tests and the code reach has a data-part attribute.
 */
function buildUi() {
  var ui = { shown: {} }; // shown: the message elements, by client id or seq
  ui.host = el("div", { class: "palaver-widget", "data-endpoint": config.endpoint, "data-mode": config.mode });
  if (config.width) ui.host.style.setProperty("--pv-w", config.width);
  if (config.height) ui.host.style.setProperty("--pv-h", config.height);
  if (config.frame) {
    ui.host.style.setProperty("--pv-w", "100%");
    ui.host.style.setProperty("--pv-h", "100vh");
  }
  ui.root = ui.host.attachShadow({ mode: "open" });
  if (ui.root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === "function" && CSSStyleSheet.prototype.replaceSync) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    ui.root.adoptedStyleSheets = [sheet];
  } else {
    ui.root.appendChild(el("style", { text: CSS }));
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
  ui.root.appendChild(wrap);
  return ui;
}

/** The badge's parts named `name`: in the bar and in the panel's head. */
function parts(name) { return ui.root.querySelectorAll("[data-part=" + name + "],[data-part=panel-" + name + "]"); }
