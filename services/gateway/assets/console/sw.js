/*
 * The console's service worker: keeps the console's shell (page, script, styles,
 * icon, manifest) so it opens without a network, shows notifications while the
 * console is in the background, and on a click brings the console forward with the
 * conversation open. The API and the WebSocket always go to the network.
 */
"use strict";

const CACHE = "palaver-console-v1";
const SHELL = [
  "/console",
  "/console/console.js",
  "/console/console.css",
  "/console/icon.svg",
  "/console/manifest.webmanifest",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

/** The cached copy of a shell request: the page for both /console and /console/login. */
function shellKey(url) {
  return url.pathname === "/console/login" ? "/console" : url.pathname;
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  const key = shellKey(url);
  if (!SHELL.includes(key)) return;
  // Network first, so a new console is used as soon as it is deployed; the cache when
  // the network is away.
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok && key === url.pathname && !url.search) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(key, copy));
        }
        return response;
      })
      .catch(() => caches.match(key).then((cached) => cached || Response.error())),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const conversation = event.notification.data && event.notification.data.conversation;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      const open = windows.find((client) => new URL(client.url).pathname.startsWith("/console"));
      if (open) {
        if (conversation) open.postMessage({ type: "open-conversation", conversation });
        return open.focus();
      }
      const target = conversation ? `/console?conversation=${encodeURIComponent(conversation)}` : "/console";
      return self.clients.openWindow(target);
    }),
  );
});
