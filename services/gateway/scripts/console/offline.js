/** The first page of messages left for the member, shown in their list. */
async function loadOfflineMessages() {
  const page = await (await api("GET", `/v1/me/offline-messages?limit=${PAGE_SIZE}`)).json();
  const list = $("offline-messages");
  list.replaceChildren();
  for (const message of page.offline_messages) {
    const email = message.email
      ? el("a", { href: `mailto:${message.email}`, text: message.email })
      : null;
    list.append(
      el("li", { class: "offline", "data-offline-message": message.id }, [
        el("div", { class: "meta" }, [
          el("span", { class: "name", text: message.visitor.display_name }),
          verifiedBadge(message.visitor.verified),
          el("time", { datetime: message.sent_at, text: formatTime(message.sent_at) }),
        ]),
        el("p", { class: "text", text: message.text }),
        email ? el("p", { class: "email" }, [document.createTextNode("Answer to "), email]) : null,
      ]),
    );
  }
  $("no-offline-messages").hidden = page.offline_messages.length > 0;
}
