/** The themes the widget knows, its limits and its timings. */
var THEMES = ["none", "blue", "green", "orange", "pink", "purple", "gray"];
var MAX_TEXT = 4000;
var KEPT_MESSAGES = 200;
var POLL_MS = 30000;
var TYPING_SEND_MS = 3000;
var TYPING_SHOW_MS = 6000;

/**
 * The widget's options: the script tag's data-* attributes, or in the frame page
 * (data-frame) the page's query and fragment. Null when data-app or data-endpoint is missing.
 */
function readConfig(script) {
  var frame = script.hasAttribute("data-frame");
  var params = frame ? new URLSearchParams(location.search) : null;
  function opt(name) {
    if (frame) return params.get(name) || "";
    return (script.getAttribute("data-" + name) || "").trim();
  }
  var config = {
    frame: frame,
    gateway: new URL(script.src, location.href).origin,
    app: opt("app"),
    endpoint: opt("endpoint"),
    assertion: frame ? new URLSearchParams(location.hash.slice(1)).get("assertion") || "" : opt("visitor-assertion"),
    theme: THEMES.indexOf(opt("theme")) >= 0 ? opt("theme") : "blue",
    width: size(opt("width")),
    height: size(opt("height")),
    title: opt("title"),
    lang: language(opt("lang")),
    mode: frame ? "inline" : (["inline", "iframe"].indexOf(opt("mode")) >= 0 ? opt("mode") : "panel")
  };
  if (!config.app || !config.endpoint) {
    if (window.console) console.error("Palaver widget: data-app and data-endpoint are required");
    return null;
  }
  return config;
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

/** The string `key` in the widget's language, with `values` filled in. */
function t(key, values) {
  return STRINGS[config.lang][key].replace(/\{(\w+)\}/g, function (_, name) {
    return values && values[name] != null ? String(values[name]) : "";
  });
}
