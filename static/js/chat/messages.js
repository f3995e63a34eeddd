// The message list: messages in id order (live, replayed or paged in), each decorated for this
// reader; grouping, scrolling, older history, the read marker and the "New messages" divider.

import { api, el, fromHTML } from "./dom.js";
import { moderationButtons } from "./moderation.js";
import { channelId, input, list, me, pane, root, scroller, toast } from "./page.js";
import { isOpen, send } from "./socket.js";
import { stopTyping } from "./typing.js";

const GROUP_MS = 5 * 60 * 1000;

export let newestId = 0; // the newest message this page has, for the socket's `since`
let hasMore = false;
let lastReadSent = 0;
let loadingOlder = false;
let catchingUp = false;
export const bodies = new Map(); // message id -> markdown body, from payloads seen
const deferred = new Map(); // message id -> html that arrived while that message was edited

export function noteNewest(id) {
  newestId = Math.max(newestId, id);
}

export function noteRead(id) {
  lastReadSent = Math.max(lastReadSent, id || 0);
}

export function messageNodes() {
  return list.querySelectorAll(".msg[data-id]");
}

function highestIdOnPage() {
  let max = 0;
  for (const node of messageNodes()) max = Math.max(max, Number(node.dataset.id));
  return max;
}

function oldestIdOnPage() {
  const first = list.querySelector(".msg[data-id]");
  return first ? Number(first.dataset.id) : 0;
}

// --- Scrolling -----------------------------------------------------------------------------

export function atBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
}

export function scrollToBottom() {
  scroller.scrollTop = scroller.scrollHeight;
  hideJump();
}

let jumpButton = null;
function showJump() {
  if (!jumpButton) {
    jumpButton = el("button", {
      type: "button",
      class: "jump",
      text: "New messages ↓",
      onclick: () => {
        scrollToBottom();
        input && input.focus();
      },
    });
    pane.append(jumpButton);
  }
  jumpButton.hidden = false;
}

function hideJump() {
  if (jumpButton) jumpButton.hidden = true;
}

// Run `change`, keeping the reader where they were: at the bottom if they were there,
// otherwise on the same content (and show the jump button when something arrived below).
export function preservingScroll(change, { arrivedBelow = false } = {}) {
  const wasAtBottom = atBottom();
  change();
  if (wasAtBottom) scrollToBottom();
  else if (arrivedBelow) showJump();
  maybeRead();
}

// --- Rendering messages --------------------------------------------------------------------

export const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

function localTime(node) {
  const time = node.querySelector(".msg__time[datetime]");
  if (!time || time.dataset.local) return;
  const date = new Date(time.getAttribute("datetime"));
  if (Number.isNaN(date.getTime())) return;
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  time.textContent = sameDay
    ? timeFormat.format(date)
    : `${dayFormat.format(date)}, ${timeFormat.format(date)}`;
  time.title = fullFormat.format(date);
  time.dataset.local = "1";
}

// Per-viewer touches on the shared partial: ownership, mentions, actions, local times.
function decorate(node) {
  if (!node || !node.classList.contains("msg")) return node;
  const mine = Number(node.dataset.author) === me;
  node.classList.toggle("mine", mine);
  node.classList.toggle(
    "mentions-me",
    !!node.querySelector(`.msg__body .mention[data-user-id="${me}"]`),
  );
  for (const button of node.querySelectorAll(".reaction")) {
    const users = (button.dataset.users || "").split(",").filter(Boolean).map(Number);
    const isMine = users.includes(me);
    button.classList.toggle("is-mine", isMine);
    button.setAttribute("aria-pressed", isMine ? "true" : "false");
    const count = users.length;
    button.title = isMine ? "Remove your reaction" : "Add this reaction";
    button.setAttribute(
      "aria-label",
      `${button.dataset.emoji} ${count} ${count === 1 ? "reaction" : "reactions"}${isMine ? ", including yours" : ""}`,
    );
  }
  localTime(node);
  if (!node.classList.contains("msg--deleted") && !node.querySelector(".msg__actions")) {
    const who = node.querySelector(".msg__who");
    const name = who ? who.textContent : "message";
    const actions = el(
      "div",
      { class: "msg__actions", role: "group", "aria-label": `Actions for ${name}'s message` },
      el("button", { type: "button", class: "msg__action", "data-action": "reply", title: "Reply", "aria-label": "Reply", text: "↩" }),
      el("button", { type: "button", class: "msg__action", "data-action": "react", title: "Add reaction", "aria-label": "Add reaction", "aria-haspopup": "true", text: "☺" }),
    );
    if (mine) {
      actions.append(
        el("button", { type: "button", class: "msg__action", "data-action": "edit", title: "Edit", "aria-label": "Edit", text: "✎" }),
        el("button", { type: "button", class: "msg__action msg__action--danger", "data-action": "delete", title: "Delete", "aria-label": "Delete", text: "🗑" }),
      );
    }
    moderationButtons(node, actions, mine);
    node.append(actions);
  }
  return node;
}

function createdAt(node) {
  const time = node && node.querySelector(".msg__time[datetime]");
  return time ? new Date(time.getAttribute("datetime")).getTime() : NaN;
}

// Consecutive messages by one author within a few minutes share one header.
export function regroup(node) {
  if (!node || !node.classList || !node.classList.contains("msg")) return;
  let previous = node.previousElementSibling;
  const continues =
    previous &&
    previous.classList.contains("msg") &&
    !previous.classList.contains("msg--pending") &&
    previous.dataset.author === node.dataset.author &&
    !node.querySelector(".msg__reply") &&
    !node.classList.contains("msg--deleted") &&
    !previous.classList.contains("msg--deleted") &&
    createdAt(node) - createdAt(previous) < GROUP_MS;
  node.classList.toggle("msg--cont", !!continues);
}

function regroupAround(node) {
  regroup(node);
  if (node) regroup(node.nextElementSibling);
}

export function removeEmpty() {
  const empty = document.getElementById("empty");
  if (empty) empty.remove();
}

// Insert a message by id order; a message already shown is left alone.
export function insertMessage(message) {
  if (message.body !== undefined) bodies.set(message.id, message.body);
  if (document.getElementById(`m${message.id}`)) return null;
  const node = decorate(fromHTML(message.html));
  if (!node) return null;
  removeEmpty();
  const nodes = messageNodes();
  let after = null;
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (Number(nodes[i].dataset.id) < message.id) {
      after = nodes[i];
      break;
    }
  }
  if (after) after.after(node);
  else if (nodes.length) nodes[0].before(node);
  else list.prepend(node);
  regroupAround(node);
  return node;
}

// An edit, deletion or reaction: the message's new rendering replaces the old one (after the
// reader's own edit box closes, if it is open).
export function replaceMessage(message) {
  if (message.body !== undefined) bodies.set(message.id, message.body);
  const old = document.getElementById(`m${message.id}`);
  if (!old) return;
  if (old.classList.contains("is-editing")) {
    deferred.set(message.id, message);
    return;
  }
  const node = decorate(fromHTML(message.html));
  if (!node) return;
  const focusedAction = old.contains(document.activeElement)
    ? document.activeElement.dataset.action || (document.activeElement.dataset.emoji && "emoji:" + document.activeElement.dataset.emoji)
    : null;
  old.replaceWith(node);
  regroupAround(node);
  if (focusedAction) {
    const target = focusedAction.startsWith("emoji:")
      ? node.querySelector(`.reaction[data-emoji="${CSS.escape(focusedAction.slice(6))}"]`)
      : node.querySelector(`[data-action="${focusedAction}"]`);
    (target || node.querySelector(".msg__action") || input).focus();
  }
}

// The edit box on message `id` closed: show what arrived for it meanwhile.
export function releaseDeferred(id) {
  const later = deferred.get(id);
  if (later) {
    deferred.delete(id);
    replaceMessage(later);
  }
}

// Live message in the open channel.
export function onNewMessage(message) {
  if (document.getElementById(`m${message.id}`)) return;
  const readingElsewhere = !atBottom() || !document.hasFocus() || document.hidden;
  preservingScroll(
    () => {
      const node = insertMessage(message);
      if (node && message.author.id !== me && readingElsewhere && !document.getElementById("new-divider")) {
        node.before(newDivider());
        regroup(node);
      }
    },
    { arrivedBelow: message.author.id !== me },
  );
  newestId = Math.max(newestId, message.id);
  stopTyping(message.author.id);
  if (message.author.id !== me && (document.hidden || !document.hasFocus())) {
    unseen += 1;
    document.title = `(${unseen}) ${baseTitle}`;
  }
}

// While the tab is in the background, its title counts the messages that arrived.
const baseTitle = document.title;
let unseen = 0;
export function seen() {
  if (document.hidden || !document.hasFocus()) return;
  unseen = 0;
  document.title = baseTitle;
}

function newDivider() {
  return el("div", { class: "divider", id: "new-divider", role: "separator" }, el("span", { text: "New messages" }));
}

export function excerptOf(node) {
  const body = node.querySelector(".msg__body");
  const text = body ? body.textContent.replace(/\s+/g, " ").trim() : "";
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

// --- Read marker and the "New messages" divider --------------------------------------------

function newestVisible() {
  const nodes = messageNodes();
  const last = nodes[nodes.length - 1];
  if (!last) return false;
  const box = last.getBoundingClientRect();
  const view = scroller.getBoundingClientRect();
  return box.top < view.bottom && box.bottom > view.top;
}

let dividerTimer = null;
export function maybeRead() {
  if (document.hidden || !document.hasFocus()) return;
  const top = highestIdOnPage();
  if (!top || !newestVisible()) return;
  if (top > lastReadSent && isOpen()) {
    lastReadSent = top;
    send({ type: "read", channel: channelId, message: top });
  }
  const divider = document.getElementById("new-divider");
  if (divider && top <= lastReadSent && !dividerTimer) {
    // Leave it long enough to be seen, then fade it out.
    dividerTimer = setTimeout(() => {
      dividerTimer = null;
      const current = document.getElementById("new-divider");
      if (!current) return;
      current.classList.add("is-fading");
      setTimeout(() => {
        const next = current.nextElementSibling;
        current.remove();
        regroup(next);
      }, 700);
    }, 6000);
  }
}

// --- History: what the socket's replay could not hold, and older pages ---------------------

// The replay was too long for the socket: read what we missed over HTTP, page by page; true
// once everything is here.
export async function catchUp() {
  if (catchingUp) return false;
  catchingUp = true;
  try {
    for (let page = 0; page < 20; page++) {
      const data = await api(`/api/channels/${channelId}/messages/?after=${newestId}`);
      preservingScroll(() => {
        for (const message of data.messages) insertMessage(message);
      }, { arrivedBelow: data.messages.length > 0 });
      for (const message of data.messages) newestId = Math.max(newestId, message.id);
      if (!data.has_more) return true;
    }
    location.reload(); // very far behind: a fresh page is quicker
  } catch (error) {
    toast("Could not load the messages you missed; reload the page.");
  } finally {
    catchingUp = false;
  }
  return false;
}

async function loadOlder() {
  if (loadingOlder || !hasMore) return;
  const oldest = oldestIdOnPage();
  if (!oldest) return;
  loadingOlder = true;
  const holder = document.getElementById("load-older");
  const wrap = holder ? holder.closest(".load-older") : null;
  if (wrap) wrap.classList.add("is-loading");
  if (holder) holder.textContent = "Loading…";
  try {
    const data = await api(`/api/channels/${channelId}/messages/?before=${oldest}`);
    const before = scroller.scrollHeight;
    const top = scroller.scrollTop;
    for (const message of data.messages) insertMessage(message);
    scroller.scrollTop = top + (scroller.scrollHeight - before);
    hasMore = !!data.has_more;
    if (!hasMore && wrap) wrap.remove();
  } catch (error) {
    toast(error.message || "Could not load older messages.");
  } finally {
    loadingOlder = false;
    if (wrap) wrap.classList.remove("is-loading");
    if (holder) holder.textContent = "Load older messages";
  }
}

// --- Start ---------------------------------------------------------------------------------

// What the page was rendered with.
export function initMessages() {
  newestId = Math.max(Number(root.dataset.lastId) || 0, highestIdOnPage());
  hasMore = root.dataset.hasMore === "1";
  lastReadSent = Number(root.dataset.lastReadId) || 0;
}

export function initHistory() {
  let scrollQueued = false;
  scroller.addEventListener("scroll", () => {
    if (scrollQueued) return;
    scrollQueued = true;
    requestAnimationFrame(() => {
      scrollQueued = false;
      if (atBottom()) hideJump();
      if (scroller.scrollTop < 120) loadOlder();
      maybeRead();
    });
  });
  const olderButton = document.getElementById("load-older");
  if (olderButton) olderButton.addEventListener("click", loadOlder);
}

// Decorate the server-rendered messages and scroll to the first unread one, or the bottom.
export function showMessages() {
  for (const node of messageNodes()) decorate(node);
  for (const node of messageNodes()) regroup(node);
  const divider = document.getElementById("new-divider");
  if (divider) {
    divider.scrollIntoView({ block: "center" });
    if (atBottom()) scrollToBottom();
  } else {
    scrollToBottom();
  }
}
