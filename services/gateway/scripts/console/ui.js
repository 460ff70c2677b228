/** The first element marked `data-part="part"` in `root` (the document when none). */
const $ = (part, root) => (root || document).querySelector(`[data-part="${part}"]`);

/** A new element: `text` is its textContent, `class` its class name, the rest attributes. */
const el = (tag, props, children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children || []) if (child) node.append(child);
  return node;
};

function verifiedBadge(verified) {
  return el("span", {
    class: verified ? "badge verified" : "badge unverified",
    "data-verified": verified ? "verified" : "unverified",
    title: verified ? "The site vouches for this visitor's name" : "The visitor chose this name; it is not checked",
    text: verified ? "verified" : "unverified",
  });
}

function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? formatClock(iso)
    : date.toLocaleDateString(undefined, { day: "numeric", month: "short" });
}

function formatClock(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function announce(text) {
  const node = $("announcer");
  node.textContent = "";
  // A new node each time, so the same words are announced again.
  setTimeout(() => {
    node.textContent = text;
  }, 30);
}
