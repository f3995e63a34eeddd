// Writing: the composer sends each message with its own client_id (over the socket, or over
// HTTP while the socket is down), shows it as pending until acknowledged, sends typing notices,
// and edits the reader's own messages in place.

import { attachmentsForSend } from "./attachments.js";
import { api, el, newClientId } from "./dom.js";
import {
  atBottom,
  bodies,
  excerptOf,
  insertMessage,
  noteNewest,
  preservingScroll,
  regroup,
  releaseDeferred,
  removeEmpty,
  scrollToBottom,
  timeFormat,
} from "./messages.js";
import {
  channelId,
  countLabel,
  form,
  input,
  list,
  maxLength,
  replyInput,
  replyPreview,
  root,
  toast,
} from "./page.js";
import { isOpen, send as sendOnSocket, sendFrame } from "./socket.js";

const TYPING_SEND_MS = 3000;

// client_id -> {body, reply_to, node, state: "queued"|"sent"|"posting"|"held"|"failed"}
// ("held": stored, but a channel flow checks it before anyone else sees it; docs/chime.md)
const pending = new Map();
let lastTypingSent = 0;

// --- Pending sends -------------------------------------------------------------------------

function pendingNode(clientId, body, replyTo) {
  const name = (document.querySelector("[data-testid=me]") || {}).textContent || root.dataset.username;
  const node = el(
    "article",
    { class: "msg msg--pending mine", "data-client-id": clientId, "aria-label": "Sending message" },
    el("div", { class: "msg__avatar", "aria-hidden": "true", text: initials(name) }),
    el(
      "div",
      { class: "msg__main" },
      el(
        "header",
        { class: "msg__head" },
        el("span", { class: "msg__who", dir: "auto", text: name }),
        el("time", { class: "msg__time", datetime: new Date().toISOString(), text: timeFormat.format(new Date()) }),
      ),
      replyTo ? replyQuote(replyTo) : null,
      el("div", { class: "msg__body msg__body--plain", dir: "auto", text: body }),
    ),
  );
  return node;
}

function replyQuote(id) {
  const target = document.getElementById(`m${id}`);
  const who = target ? target.querySelector(".msg__who").textContent : "";
  const text = target ? excerptOf(target) : "";
  return el("span", { class: "msg__reply" }, el("span", { class: "msg__reply-who", dir: "auto", text: who }), " ", el("bdi", { class: "msg__reply-text", text }));
}

function initials(name) {
  const parts = String(name).replace(/[_.]/g, " ").split(/\s+/).filter(Boolean);
  if (!parts.length) return "?";
  return (parts[0][0] + (parts[1] ? parts[1][0] : "")).toUpperCase();
}

function send(body, replyTo, attachments = []) {
  const clientId = newClientId();
  const node = pendingNode(clientId, body, replyTo);
  const entry = { body, reply_to: replyTo, attachments, node, state: "queued" };
  pending.set(clientId, entry);
  removeEmpty();
  list.append(node);
  regroup(node);
  scrollToBottom();
  transmit(clientId, entry);
}

function transmit(clientId, entry) {
  clearFailure(entry);
  if (isOpen()) {
    entry.state = "sent";
    sendOnSocket(
      { type: "message.send", channel: channelId, client_id: clientId, body: entry.body, reply_to: entry.reply_to, attachments: entry.attachments },
    );
    return;
  }
  // No socket right now: post over HTTP (the server dedupes by client_id, so a later
  // re-send over the socket cannot double it). If that fails too, wait for the socket.
  entry.state = "posting";
  api(`/api/channels/${channelId}/messages/`, {
    body: { body: entry.body, client_id: clientId, reply_to: entry.reply_to, attachments: entry.attachments },
  })
    .then((data) => {
      if (data.error && data.error.code === "message_pending") holdPending(clientId, data.error.detail);
      else acknowledge(clientId, data.message);
    })
    .catch((error) => {
      if (!pending.has(clientId)) return;
      if (error.status && error.status < 500 && error.status !== 429) fail(clientId, error.message);
      else entry.state = "queued";
    });
}

export function acknowledge(clientId, message) {
  const entry = pending.get(clientId);
  if (entry) {
    pending.delete(clientId);
    entry.node.remove();
  }
  if (message && message.channel === channelId) {
    preservingScroll(() => insertMessage(message));
    noteNewest(message.id);
  }
}

// How soon the page asks again where a channel flow is with a held message (doubling).
const STATUS_FIRST_MS = 3000;
const STATUS_MAX_MS = 30000;

// Ask the server where the flow is with a held message (the outcome is also pushed; asking
// covers a push this page missed, e.g. while it reconnected).
function askStatus(clientId, entry, delay) {
  clearTimeout(entry.statusTimer);
  entry.statusDelay = delay;
  entry.statusTimer = setTimeout(() => {
    if (pending.get(clientId) !== entry || entry.state !== "held") return;
    if (isOpen()) sendOnSocket({ type: "message.status", client_id: clientId });
    askStatus(clientId, entry, Math.min(delay * 2, STATUS_MAX_MS));
  }, delay);
}

// The message is stored but a channel flow checks it first: only its author sees it, marked
// pending, until `message.status` says it was sent (replaced by the message) or refused.
export function holdPending(clientId, detail) {
  const entry = pending.get(clientId);
  if (!entry) return;
  if (entry.state !== "held") askStatus(clientId, entry, STATUS_FIRST_MS);
  entry.state = "held";
  clearFailure(entry);
  entry.node.classList.add("msg--held");
  entry.node.dataset.status = "pending";
  entry.node.setAttribute("aria-label", "Message waiting for the channel's checks");
  if (!entry.node.querySelector(".msg__status")) {
    entry.node.querySelector(".msg__main").append(
      el("div", { class: "msg__status", role: "status", "data-testid": "flow-status", text: detail || "Pending: being checked before others see it." }),
    );
  }
}

// A channel flow decided a message this author sent (`message.status`).
export function flowOutcome(frame) {
  const entry = pending.get(frame.client_id);
  if (entry) clearTimeout(entry.statusTimer);
  if (frame.status === "pending") {
    if (entry) askStatus(frame.client_id, entry, entry.statusDelay || STATUS_FIRST_MS);
    return;
  }
  if (frame.status === "sent") {
    acknowledge(frame.client_id, frame.message);
    return;
  }
  if (!entry) {
    toast(frame.detail || "A message you sent was not delivered.");
    return;
  }
  const status = entry.node.querySelector(".msg__status");
  if (status) status.remove();
  entry.node.classList.remove("msg--held");
  entry.node.classList.add("msg--denied");
  entry.node.dataset.status = frame.status;
  entry.node.setAttribute("aria-label", "Message not sent");
  fail(frame.client_id, frame.detail, { retry: false });
}

function fail(clientId, detail, { retry = true } = {}) {
  const entry = pending.get(clientId);
  if (!entry) return;
  entry.state = "failed";
  entry.node.classList.add("msg--failed");
  clearFailure(entry);
  entry.node.querySelector(".msg__main").append(
    el(
      "div",
      { class: "msg__error", role: "alert" },
      el("span", { text: detail || "Not sent." }),
      retry ? el("button", { type: "button", class: "linklike", text: "Retry", onclick: () => transmit(clientId, entry) }) : null,
      el("button", {
        type: "button",
        class: "linklike",
        text: "Discard",
        onclick: () => {
          pending.delete(clientId);
          entry.node.remove();
        },
      }),
    ),
  );
}

function clearFailure(entry) {
  entry.node.classList.remove("msg--failed");
  const error = entry.node.querySelector(".msg__error");
  if (error) error.remove();
}

// The server refused the message sent with client_id `ref`; false if `ref` is not ours.
export function failPending(ref, detail) {
  if (typeof ref !== "string" || !pending.has(ref)) return false;
  fail(ref, detail);
  return true;
}

// The socket (re)opened: send what is still waiting.
export function resendPending() {
  for (const [clientId, entry] of pending) {
    if (entry.state === "held") sendOnSocket({ type: "message.status", client_id: clientId });
    else if (entry.state !== "failed" && entry.state !== "posting") transmit(clientId, entry);
  }
}

// The socket closed: what it had not acknowledged goes again on the next one.
export function requeueSent() {
  for (const entry of pending.values()) if (entry.state === "sent") entry.state = "queued";
}

// --- The composer --------------------------------------------------------------------------

function autoGrow() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight + 2, window.innerHeight * 0.4)}px`;
}

function updateCount() {
  if (!countLabel) return;
  const length = input.value.length;
  if (length < maxLength * 0.8) {
    countLabel.textContent = "";
    return;
  }
  countLabel.textContent = `${length} / ${maxLength}`;
  countLabel.classList.toggle("is-over", length > maxLength);
}

export function setReply(node) {
  if (!replyInput || !replyPreview) return;
  replyInput.value = node.dataset.id;
  const span = replyPreview.querySelector("span");
  span.textContent = "";
  span.append("Replying to ", el("strong", { dir: "auto", text: node.querySelector(".msg__who").textContent }), " ", el("bdi", { text: excerptOf(node) }));
  replyPreview.classList.remove("is-hidden");
  input.focus();
}

function clearReply() {
  if (!replyInput || !replyPreview) return;
  replyInput.value = "";
  replyPreview.classList.add("is-hidden");
}

// Message `id` was deleted: stop replying to it.
export function dropReplyTo(id) {
  if (Number(replyInput && replyInput.value) === id) clearReply();
}

export function initComposer() {
  if (!form || !input) return;
  input.setAttribute("maxlength", String(maxLength));
  if (replyInput && replyInput.value) {
    const target = document.getElementById(`m${replyInput.value}`);
    if (target) setReply(target);
    else replyInput.value = "";
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const attachments = await attachmentsForSend();
    if (attachments === null) return;
    const body = input.value;
    if (!body.trim() && !attachments.length) {
      input.focus();
      return;
    }
    if (body.length > maxLength) {
      toast(`A message has at most ${maxLength} characters.`);
      return;
    }
    const replyTo = replyInput && replyInput.value ? Number(replyInput.value) : null;
    send(body, replyTo, attachments);
    input.value = "";
    autoGrow();
    updateCount();
    clearReply();
    input.focus();
  });
  input.addEventListener("keydown", (event) => {
    if (event.isComposing || event.keyCode === 229) return;
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "ArrowUp" && input.value === "") {
      const mine = list.querySelectorAll(".msg.mine[data-id]:not(.msg--deleted)");
      const last = mine[mine.length - 1];
      if (last) {
        event.preventDefault();
        startEdit(last);
      }
    } else if (event.key === "Escape" && replyInput && replyInput.value) {
      clearReply();
    }
  });
  input.addEventListener("input", () => {
    autoGrow();
    updateCount();
    const now = Date.now();
    if (input.value && now - lastTypingSent > TYPING_SEND_MS && isOpen()) {
      lastTypingSent = now;
      sendOnSocket({ type: "typing", channel: channelId });
    }
  });
  const cancel = document.getElementById("reply-cancel");
  if (cancel) cancel.addEventListener("click", () => {
    clearReply();
    input.focus();
  });
  // The form's own client_id is for the no-script post; the script makes one per message.
  const hiddenClientId = form.querySelector("input[name=client_id]");
  if (hiddenClientId) hiddenClientId.disabled = true;
}

// Size the composer to its text and, unless the URL points elsewhere, put the cursor there.
export function readyComposer() {
  if (!input) return;
  autoGrow();
  if (!location.hash || location.hash === "#composer") input.focus({ preventScroll: true });
}

// --- Editing -------------------------------------------------------------------------------

async function bodyOf(node) {
  const id = Number(node.dataset.id);
  if (bodies.has(id)) return bodies.get(id);
  try {
    const data = await api(`/api/channels/${channelId}/messages/?after=${id - 1}&limit=1`);
    const message = data.messages.find((m) => m.id === id);
    if (message) {
      bodies.set(id, message.body);
      return message.body;
    }
  } catch (e) {
    // fall back to the rendered text below
  }
  const body = node.querySelector(".msg__body");
  return body ? body.innerText.trim() : "";
}

export async function startEdit(node) {
  if (node.classList.contains("is-editing")) return;
  node.classList.add("is-editing");
  const bodyNode = node.querySelector(".msg__body");
  const original = await bodyOf(node);
  if (!node.isConnected) return;
  const area = el("textarea", { rows: "2", maxlength: String(maxLength), "aria-label": "Edit message" });
  area.value = original;
  const box = el(
    "div",
    { class: "msg__edit" },
    area,
    el("span", { class: "msg__edit-hint", text: "Enter saves · Esc cancels · Shift+Enter new line" }),
  );
  bodyNode.hidden = true;
  bodyNode.after(box);
  const grow = () => {
    area.style.height = "auto";
    area.style.height = `${Math.min(area.scrollHeight + 2, window.innerHeight * 0.4)}px`;
  };
  const finish = () => {
    box.remove();
    bodyNode.hidden = false;
    node.classList.remove("is-editing");
    releaseDeferred(Number(node.dataset.id));
    if (input) input.focus();
  };
  area.addEventListener("input", grow);
  area.addEventListener("keydown", (event) => {
    if (event.isComposing) return;
    if (event.key === "Escape") {
      event.preventDefault();
      finish();
    } else if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      const body = area.value;
      if (body === original) {
        finish();
        return;
      }
      if (!body.trim()) {
        toast("A message cannot be empty; delete it instead.");
        return;
      }
      if (sendFrame({ type: "message.edit", message: Number(node.dataset.id), body })) {
        bodies.set(Number(node.dataset.id), body);
        finish();
      }
    }
  });
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
  grow();
  if (atBottom()) scrollToBottom();
}
