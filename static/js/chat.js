// The channel page, made live: one WebSocket per tab (protocol in docs/protocol.md).
// The page works without this script (the composer is a plain form); this adds live messages,
// sending without reloads, edits, reactions, replies, typing, presence and unread badges.

import { attachmentsForSend } from "./attachments.js";

const root = document.getElementById("chat");
if (root) start(root);

function start(root) {
  "use strict";

  // --- State ---------------------------------------------------------------------------------

  const me = Number(root.dataset.userId);
  const channelId = Number(root.dataset.channelId);
  const communityId = Number(root.dataset.communityId);
  const maxLength = Number(root.dataset.maxLength) || 4000;
  const scroller = document.getElementById("messages");
  const list = document.getElementById("message-list");
  const form = document.getElementById("composer");
  const input = document.getElementById("composer-input");
  const replyInput = document.getElementById("reply-to");
  const replyPreview = document.getElementById("reply-preview");
  const countLabel = document.getElementById("composer-count");
  const conn = document.getElementById("conn");
  const typingLine = document.getElementById("typing");
  const pane = root.querySelector(".pane--messages");

  const PING_MS = 20000;
  const BACKOFF_CAP_MS = 15000;
  const TYPING_SEND_MS = 3000;
  const TYPING_SHOW_MS = 4000;
  const GROUP_MS = 5 * 60 * 1000;
  const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

  let newestId = Math.max(Number(root.dataset.lastId) || 0, highestIdOnPage());
  let hasMore = root.dataset.hasMore === "1";
  let lastReadSent = Number(root.dataset.lastReadId) || 0;
  let socket = null;
  let attempt = 0;
  let reconnectTimer = null;
  let pingTimer = null;
  let lastPong = 0;
  let stopped = false;
  let lastTypingSent = 0;
  let loadingOlder = false;
  let catchingUp = false;
  const pending = new Map(); // client_id -> {body, reply_to, node, state: "queued"|"sent"|"failed"}
  const bodies = new Map(); // message id -> markdown body, from payloads seen
  const typers = new Map(); // user id -> {name, timer}
  const deferred = new Map(); // message id -> html that arrived while that message was edited

  // --- Small helpers -------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function fromHTML(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function messageNodes() {
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

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [key, ...rest] = part.trim().split("=");
      if (key === name) return decodeURIComponent(rest.join("="));
    }
    return "";
  }

  function csrfToken() {
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return cookie("csrftoken") || (field ? field.value : "");
  }

  async function api(path, options = {}) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" } };
    if (options.body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = csrfToken();
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && data.error ? data.error.detail : `The server said ${response.status}.`;
      const error = new Error(detail);
      error.status = response.status;
      error.code = data && data.error ? data.error.code : "http";
      throw error;
    }
    return data;
  }

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  let toastTimer = null;
  function toast(text) {
    let node = pane.querySelector(".toast");
    if (!node) {
      node = el("div", { class: "toast", role: "alert" });
      pane.append(node);
    }
    node.textContent = text;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => node.remove(), 5000);
  }

  // --- Scrolling -----------------------------------------------------------------------------

  function atBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  }

  function scrollToBottom() {
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
  function preservingScroll(change, { arrivedBelow = false } = {}) {
    const wasAtBottom = atBottom();
    change();
    if (wasAtBottom) scrollToBottom();
    else if (arrivedBelow) showJump();
    maybeRead();
  }

  // --- Rendering messages --------------------------------------------------------------------

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
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
      node.append(actions);
    }
    return node;
  }

  function createdAt(node) {
    const time = node && node.querySelector(".msg__time[datetime]");
    return time ? new Date(time.getAttribute("datetime")).getTime() : NaN;
  }

  // Consecutive messages by one author within a few minutes share one header.
  function regroup(node) {
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

  function removeEmpty() {
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
  }

  // Insert a message by id order; a message already shown is left alone.
  function insertMessage(message) {
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

  function replaceMessage(message) {
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

  // Live message in the open channel.
  function onNewMessage(message) {
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
  function seen() {
    if (document.hidden || !document.hasFocus()) return;
    unseen = 0;
    document.title = baseTitle;
  }

  function newDivider() {
    return el("div", { class: "divider", id: "new-divider", role: "separator" }, el("span", { text: "New messages" }));
  }

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
          el("span", { class: "msg__who", text: name }),
          el("time", { class: "msg__time", datetime: new Date().toISOString(), text: timeFormat.format(new Date()) }),
        ),
        replyTo ? replyQuote(replyTo) : null,
        el("div", { class: "msg__body msg__body--plain", text: body }),
      ),
    );
    return node;
  }

  function replyQuote(id) {
    const target = document.getElementById(`m${id}`);
    const who = target ? target.querySelector(".msg__who").textContent : "";
    const text = target ? excerptOf(target) : "";
    return el("span", { class: "msg__reply" }, el("span", { class: "msg__reply-who", text: who }), document.createTextNode(` ${text}`));
  }

  function initials(name) {
    const parts = String(name).replace(/[_.]/g, " ").split(/\s+/).filter(Boolean);
    if (!parts.length) return "?";
    return (parts[0][0] + (parts[1] ? parts[1][0] : "")).toUpperCase();
  }

  function excerptOf(node) {
    const body = node.querySelector(".msg__body");
    const text = body ? body.textContent.replace(/\s+/g, " ").trim() : "";
    return text.length > 120 ? `${text.slice(0, 119)}…` : text;
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
    if (socket && socket.readyState === WebSocket.OPEN) {
      entry.state = "sent";
      socket.send(
        JSON.stringify({ type: "message.send", channel: channelId, client_id: clientId, body: entry.body, reply_to: entry.reply_to, attachments: entry.attachments }),
      );
      return;
    }
    // No socket right now: post over HTTP (the server dedupes by client_id, so a later
    // re-send over the socket cannot double it). If that fails too, wait for the socket.
    entry.state = "posting";
    api(`/api/channels/${channelId}/messages/`, {
      body: { body: entry.body, client_id: clientId, reply_to: entry.reply_to, attachments: entry.attachments },
    })
      .then((data) => acknowledge(clientId, data.message))
      .catch((error) => {
        if (!pending.has(clientId)) return;
        if (error.status && error.status < 500 && error.status !== 429) fail(clientId, error.message);
        else entry.state = "queued";
      });
  }

  function acknowledge(clientId, message) {
    const entry = pending.get(clientId);
    if (entry) {
      pending.delete(clientId);
      entry.node.remove();
    }
    if (message && message.channel === channelId) {
      preservingScroll(() => insertMessage(message));
      newestId = Math.max(newestId, message.id);
    }
  }

  function fail(clientId, detail) {
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
        el("button", { type: "button", class: "linklike", text: "Retry", onclick: () => transmit(clientId, entry) }),
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

  // --- The socket ----------------------------------------------------------------------------

  let everConnected = false;
  function setState(state) {
    if (state === "connected") everConnected = true;
    const labels = {
      connected: "connected",
      reconnecting: everConnected ? "reconnecting…" : "connecting…",
      offline: "offline",
    };
    conn.dataset.state = state;
    conn.textContent = labels[state] || state;
    conn.title = state === "connected" ? "Live updates are on" : "Live updates paused; your messages are kept";
  }

  function otherChannelIds() {
    return Array.from(document.querySelectorAll("#channel-list [data-channel]"), (a) => Number(a.dataset.channel)).filter(
      (id) => id && id !== channelId,
    );
  }

  function connect() {
    if (stopped) return;
    clearTimeout(reconnectTimer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/`);
    socket = ws;
    ws.addEventListener("open", () => {
      if (socket !== ws) return;
      attempt = 0;
      lastPong = Date.now();
      setState("connected");
      setPresence(me, true); // our own announcement went out before we listened
      // The open channel replays from the newest message we have; the others only keep their
      // unread badges live.
      ws.send(JSON.stringify({ type: "subscribe", channel: channelId, since: newestId }));
      for (const id of otherChannelIds()) ws.send(JSON.stringify({ type: "subscribe", channel: id, since: null }));
      for (const [clientId, entry] of pending) if (entry.state !== "failed" && entry.state !== "posting") transmit(clientId, entry);
      clearInterval(pingTimer);
      pingTimer = setInterval(ping, PING_MS);
    });
    ws.addEventListener("message", (event) => {
      if (socket !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      handle(frame);
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return;
      socket = null;
      clearInterval(pingTimer);
      for (const entry of pending.values()) if (entry.state === "sent") entry.state = "queued";
      if (event.code === 4401 || event.code === 4001) {
        // Logged out (here or in another tab): the page itself now needs a login.
        stopped = true;
        setState("offline");
        toast("You are logged out. Reload the page to log in again.");
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (stopped) return;
    setState(navigator.onLine === false ? "offline" : "reconnecting");
    const base = Math.min(BACKOFF_CAP_MS, 500 * 2 ** attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    attempt += 1;
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, delay);
  }

  function ping() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    if (Date.now() - lastPong > PING_MS * 2.5) {
      socket.close(); // silent for too long: start over
      return;
    }
    socket.send(JSON.stringify({ type: "ping" }));
  }

  function sendFrame(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    toast("Not connected; try again in a moment.");
    return false;
  }

  window.addEventListener("online", () => {
    if (!socket) {
      attempt = 0;
      connect();
    }
  });
  window.addEventListener("offline", () => {
    if (!socket) setState("offline");
  });

  // --- Incoming frames -----------------------------------------------------------------------

  function handle(frame) {
    lastPong = Date.now();
    switch (frame.type) {
      case "message.new":
        if (frame.message.channel === channelId) onNewMessage(frame.message);
        else bumpUnread(frame.message);
        break;
      case "message.updated":
      case "message.deleted":
      case "reaction":
        if (frame.message.channel === channelId) {
          preservingScroll(() => replaceMessage(frame.message));
          if (frame.type === "message.deleted" && Number(replyInput && replyInput.value) === frame.message.id) clearReply();
        }
        break;
      case "message.ack":
        acknowledge(frame.client_id, frame.message);
        break;
      case "subscribed":
        if (frame.channel === channelId) {
          if (frame.truncated) catchUp();
          else newestId = Math.max(newestId, frame.last_id || 0);
          maybeRead();
        }
        break;
      case "unsubscribed":
        if (frame.channel === channelId && frame.reason === "removed") {
          stopped = true;
          if (socket) socket.close();
          setState("offline");
          toast("You no longer have access to this channel.");
        }
        break;
      case "typing":
        if (frame.channel === channelId && frame.user.id !== me) showTyping(frame.user);
        break;
      case "presence":
        if (frame.community === communityId) setPresence(frame.user.id, frame.online);
        break;
      case "read":
        if (frame.channel !== channelId) clearUnread(frame.channel);
        else lastReadSent = Math.max(lastReadSent, frame.message || 0);
        break;
      case "error":
        onError(frame);
        break;
      default:
        break; // pong and anything newer than this script
    }
  }

  function onError(frame) {
    if (typeof frame.ref === "string" && pending.has(frame.ref)) {
      fail(frame.ref, frame.detail);
      return;
    }
    if (frame.ref === "typing" || frame.ref === "read" || frame.ref === "ping") return;
    if (frame.ref === "subscribe" && frame.code === "not_found") return;
    toast(frame.detail || "Something went wrong.");
  }

  // The replay was too long for the socket: read what we missed over HTTP, page by page.
  async function catchUp() {
    if (catchingUp) return;
    catchingUp = true;
    try {
      for (let page = 0; page < 20; page++) {
        const data = await api(`/api/channels/${channelId}/messages/?after=${newestId}`);
        preservingScroll(() => {
          for (const message of data.messages) insertMessage(message);
        }, { arrivedBelow: data.messages.length > 0 });
        for (const message of data.messages) newestId = Math.max(newestId, message.id);
        if (!data.has_more) return;
      }
      location.reload(); // very far behind: a fresh page is quicker
    } catch (error) {
      toast("Could not load the messages you missed; reload the page.");
    } finally {
      catchingUp = false;
    }
  }

  // --- Sidebar: unread badges and presence ---------------------------------------------------

  function bumpUnread(message) {
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

  function clearUnread(id) {
    const badge = document.querySelector(`[data-unread="${id}"]`);
    if (!badge) return;
    badge.textContent = "0";
    badge.setAttribute("aria-label", "0 unread");
    badge.classList.add("is-hidden");
    badge.classList.remove("badge--mention");
    const link = badge.closest(".channel-link");
    if (link) link.classList.remove("has-unread");
  }

  for (const badge of document.querySelectorAll("[data-unread]:not(.is-hidden)")) {
    const link = badge.closest(".channel-link");
    if (link) link.classList.add("has-unread");
  }

  function setPresence(userId, online) {
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

  Array.from(document.querySelectorAll("#member-list li")).forEach((li, index) => {
    li.dataset.order = String(index);
  });

  // --- Typing --------------------------------------------------------------------------------

  function showTyping(user) {
    const current = typers.get(user.id);
    if (current) clearTimeout(current.timer);
    typers.set(user.id, { name: user.display_name || user.username, timer: setTimeout(() => stopTyping(user.id), TYPING_SHOW_MS) });
    renderTyping();
  }

  function stopTyping(userId) {
    const current = typers.get(userId);
    if (!current) return;
    clearTimeout(current.timer);
    typers.delete(userId);
    renderTyping();
  }

  function renderTyping() {
    const names = Array.from(typers.values(), (t) => t.name);
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    typingLine.textContent = text;
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
  function maybeRead() {
    if (document.hidden || !document.hasFocus()) return;
    const top = highestIdOnPage();
    if (!top || !newestVisible()) return;
    if (top > lastReadSent && socket && socket.readyState === WebSocket.OPEN) {
      lastReadSent = top;
      socket.send(JSON.stringify({ type: "read", channel: channelId, message: top }));
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

  window.addEventListener("focus", () => {
    seen();
    maybeRead();
  });
  document.addEventListener("visibilitychange", () => {
    seen();
    maybeRead();
    // Back from the background (a phone, a sleeping laptop): don't wait out the backoff.
    if (!document.hidden && !socket && !stopped) {
      attempt = 0;
      connect();
    }
  });

  // --- Scrolling and older history -----------------------------------------------------------

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

  const olderButton = document.getElementById("load-older");
  if (olderButton) olderButton.addEventListener("click", loadOlder);

  // --- Composer ------------------------------------------------------------------------------

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

  function setReply(node) {
    if (!replyInput || !replyPreview) return;
    replyInput.value = node.dataset.id;
    const span = replyPreview.querySelector("span");
    span.textContent = "";
    span.append("Replying to ", el("strong", { text: node.querySelector(".msg__who").textContent }), ` ${excerptOf(node)}`);
    replyPreview.classList.remove("is-hidden");
    input.focus();
  }

  function clearReply() {
    if (!replyInput || !replyPreview) return;
    replyInput.value = "";
    replyPreview.classList.add("is-hidden");
  }

  if (form && input) {
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
      if (input.value && now - lastTypingSent > TYPING_SEND_MS && socket && socket.readyState === WebSocket.OPEN) {
        lastTypingSent = now;
        socket.send(JSON.stringify({ type: "typing", channel: channelId }));
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

  async function startEdit(node) {
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
      const id = Number(node.dataset.id);
      const later = deferred.get(id);
      if (later) {
        deferred.delete(id);
        replaceMessage(later);
      }
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

  // --- Message actions: reply, react, edit, delete, reaction toggles -------------------------

  let picker = null;
  function closePicker(returnFocus) {
    if (!picker) return;
    const opener = picker.opener;
    picker.remove();
    picker = null;
    if (opener) opener.setAttribute("aria-expanded", "false");
    if (returnFocus && opener && opener.isConnected) opener.focus();
    for (const node of list.querySelectorAll(".msg.is-active")) node.classList.remove("is-active");
  }

  function openPicker(node, opener) {
    closePicker(false);
    const id = Number(node.dataset.id);
    picker = el("div", { class: "emoji-picker", role: "menu", "aria-label": "Pick a reaction" });
    for (const emoji of EMOJI) {
      picker.append(
        el("button", {
          type: "button",
          role: "menuitem",
          text: emoji,
          "aria-label": `React with ${emoji}`,
          onclick: () => {
            const existing = node.querySelector(`.reaction[data-emoji="${CSS.escape(emoji)}"]`);
            const mine = existing && existing.classList.contains("is-mine");
            sendFrame({ type: mine ? "reaction.remove" : "reaction.add", message: id, emoji });
            closePicker(true);
          },
        }),
      );
    }
    picker.opener = opener;
    opener.setAttribute("aria-expanded", "true");
    node.classList.add("is-active");
    pane.append(picker);
    const paneBox = pane.getBoundingClientRect();
    const box = opener.getBoundingClientRect();
    const width = picker.offsetWidth;
    const height = picker.offsetHeight;
    let left = box.right - paneBox.left - width;
    left = Math.max(8, Math.min(left, paneBox.width - width - 8));
    let top = box.bottom - paneBox.top + 4;
    if (top + height > paneBox.height - 8) top = box.top - paneBox.top - height - 4;
    picker.style.left = `${left}px`;
    picker.style.top = `${Math.max(8, top)}px`;
    picker.querySelector("button").focus();
    picker.addEventListener("keydown", (event) => {
      const buttons = Array.from(picker.querySelectorAll("button"));
      const index = buttons.indexOf(document.activeElement);
      const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 4, ArrowUp: -4 };
      if (event.key === "Escape") {
        event.preventDefault();
        closePicker(true);
      } else if (event.key in moves) {
        event.preventDefault();
        buttons[(index + moves[event.key] + buttons.length) % buttons.length].focus();
      } else if (event.key === "Tab") {
        closePicker(false);
      }
    });
  }

  document.addEventListener("click", (event) => {
    if (picker && !picker.contains(event.target) && !event.target.closest("[data-action=react]")) closePicker(false);
  });

  list.addEventListener("click", (event) => {
    const target = event.target;
    const node = target.closest(".msg[data-id]");
    if (!node) return;
    const action = target.closest("[data-action]");
    if (action) {
      const kind = action.dataset.action;
      if (kind === "reply") setReply(node);
      else if (kind === "react") {
        if (picker && picker.opener === action) closePicker(true);
        else openPicker(node, action);
      } else if (kind === "edit") startEdit(node);
      else if (kind === "delete") {
        if (window.confirm("Delete this message? This cannot be undone.")) {
          sendFrame({ type: "message.delete", message: Number(node.dataset.id) });
        }
      }
      return;
    }
    const reaction = target.closest(".reaction");
    if (reaction) {
      const mine = reaction.classList.contains("is-mine");
      sendFrame({ type: mine ? "reaction.remove" : "reaction.add", message: Number(node.dataset.id), emoji: reaction.dataset.emoji });
      return;
    }
    const quote = target.closest(".msg__reply[data-reply-to]");
    if (quote) {
      const original = document.getElementById(`m${quote.dataset.replyTo}`);
      if (original) {
        event.preventDefault();
        original.scrollIntoView({ block: "center", behavior: "smooth" });
        original.classList.remove("is-flash");
        void original.offsetWidth;
        original.classList.add("is-flash");
      }
    }
  });

  // --- Panes on narrow screens ---------------------------------------------------------------

  function setPane(which) {
    for (const name of ["channels", "members"]) {
      const open = which === name;
      root.classList.toggle(`show-${name}`, open);
      const button = root.querySelector(`[data-toggle="${name}"]`);
      if (button) button.setAttribute("aria-expanded", open ? "true" : "false");
    }
    if (which) {
      const first = root.querySelector(`#pane-${which} a, #pane-${which} li`);
      if (first && first.focus) first.focus();
    }
  }

  for (const button of root.querySelectorAll("[data-toggle]")) {
    button.addEventListener("click", () => {
      const which = button.dataset.toggle;
      setPane(root.classList.contains(`show-${which}`) ? null : which);
    });
  }
  const backdrop = root.querySelector("[data-close-panes]");
  if (backdrop) backdrop.addEventListener("click", () => setPane(null));
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (picker) return;
    if (root.classList.contains("show-channels") || root.classList.contains("show-members")) {
      const which = root.classList.contains("show-channels") ? "channels" : "members";
      setPane(null);
      const button = root.querySelector(`[data-toggle="${which}"]`);
      if (button) button.focus();
    }
  });

  // --- Go ------------------------------------------------------------------------------------

  for (const node of messageNodes()) decorate(node);
  for (const node of messageNodes()) regroup(node);
  const divider = document.getElementById("new-divider");
  if (divider) {
    divider.scrollIntoView({ block: "center" });
    if (atBottom()) scrollToBottom();
  } else {
    scrollToBottom();
  }
  if (input) {
    autoGrow();
    if (!location.hash || location.hash === "#composer") input.focus({ preventScroll: true });
  }
  root.dataset.ready = "1";
  setState("reconnecting");
  connect();
}
