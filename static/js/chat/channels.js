// What the owners' tools change about a channel, applied live: a rename, a new topic,
// archiving (read-only) and its undo, deletion (docs/protocol.md, `channel.updated` and
// `unsubscribed` with reason `deleted`).

import { channelId } from "./page.js";

function sidebarLink(id) {
  return document.querySelector(`#channel-list a[data-channel="${id}"]`);
}

export function channelUpdated(channel) {
  const link = sidebarLink(channel.id);
  if (link) {
    const name = link.querySelector("bdi");
    if (name) name.textContent = channel.name;
    link.href = channel.url;
    // Archived channels leave the list; they stay readable at their address.
    if (channel.id !== channelId) link.parentElement.classList.toggle("is-hidden", channel.archived);
  }
  if (channel.id !== channelId) return;
  const title = document.querySelector("#channel-title bdi");
  if (title) title.textContent = channel.name;
  const topic = document.querySelector(".channel-head__topic");
  if (topic) topic.textContent = channel.topic;
  if (location.pathname !== channel.url) history.replaceState(history.state, "", channel.url + location.hash);
  const note = document.getElementById("archived-note");
  const composer = document.getElementById("composer");
  if (note) note.classList.toggle("is-hidden", !channel.archived);
  if (composer) {
    composer.classList.toggle("is-hidden", channel.archived);
    for (const field of composer.elements) field.disabled = channel.archived;
  } else if (!channel.archived) {
    location.reload(); // archived when the page was built: it had no composer to show again
  }
}

export function channelDeleted(id) {
  const link = sidebarLink(id);
  if (link) link.parentElement.remove();
}
