// The channel list's unread badges and the member list's presence dots.

import { fromHTML } from "./dom.js";
import { channelId, me } from "./page.js";

// The community's other channels: the socket subscribes to them to keep their badges live.
export function otherChannelIds() {
  return Array.from(document.querySelectorAll("#channel-list [data-channel]"), (a) => Number(a.dataset.channel)).filter(
    (id) => id && id !== channelId,
  );
}

export function bumpUnread(message) {
  if (message.author.id === me) return;
  const badge = document.querySelector(`[data-unread="${message.channel}"]`);
  if (!badge) return;
  const count = (Number(badge.textContent) || 0) + 1;
  badge.textContent = String(count);
  badge.setAttribute("aria-label", `${count} unread`);
  badge.classList.remove("is-hidden");
  if (fromHTML(message.html).querySelector(`.mention[data-user-id="${me}"]`)) badge.classList.add("badge--mention");
  const link = badge.closest(".channel-link");
  if (link) link.classList.add("has-unread");
}

export function clearUnread(id) {
  const badge = document.querySelector(`[data-unread="${id}"]`);
  if (!badge) return;
  badge.textContent = "0";
  badge.setAttribute("aria-label", "0 unread");
  badge.classList.add("is-hidden");
  badge.classList.remove("badge--mention");
  const link = badge.closest(".channel-link");
  if (link) link.classList.remove("has-unread");
}

export function setPresence(userId, online) {
  const item = document.querySelector(`#member-list li[data-member="${userId}"]`);
  if (!item) return;
  item.classList.toggle("is-online", online);
  const label = item.querySelector(".presence-label");
  if (label) label.textContent = online ? "online" : "offline";
  // Online members first, each group in its server order.
  const memberList = item.parentElement;
  const items = Array.from(memberList.children);
  items.sort((a, b) => Number(b.classList.contains("is-online")) - Number(a.classList.contains("is-online")) || a.dataset.order - b.dataset.order);
  for (const li of items) memberList.append(li);
}

export function initSidebar() {
  for (const badge of document.querySelectorAll("[data-unread]:not(.is-hidden)")) {
    const link = badge.closest(".channel-link");
    if (link) link.classList.add("has-unread");
  }
  Array.from(document.querySelectorAll("#member-list li")).forEach((li, index) => {
    li.dataset.order = String(index);
  });
}
