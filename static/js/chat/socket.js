// The one WebSocket per tab (protocol in docs/protocol.md): connects, pings, and reconnects with
// backoff. What to send on open and what to do with each frame is main.js's business.

import { conn, toast } from "./page.js";

const PING_MS = 20000;
const BACKOFF_CAP_MS = 15000;

let socket = null;
let attempt = 0;
let reconnectTimer = null;
let pingTimer = null;
let lastPong = 0;
let stopped = false;
let everConnected = false;
let hooks = null; // {onOpen(), onFrame(frame), onClose()}

export function isOpen() {
  return !!socket && socket.readyState === WebSocket.OPEN;
}

// Send on the open socket; callers check isOpen() first.
export function send(frame) {
  socket.send(JSON.stringify(frame));
}

// Send, or tell the reader it could not be sent.
export function sendFrame(frame) {
  if (isOpen()) {
    send(frame);
    return true;
  }
  toast("Not connected; try again in a moment.");
  return false;
}

export function setState(state) {
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

// Close for good (logged out, or no longer allowed in), and say why.
export function stop(reason) {
  stopped = true;
  if (socket) socket.close();
  setState("offline");
  toast(reason);
}

export function connect() {
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
    hooks.onOpen();
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
    lastPong = Date.now();
    hooks.onFrame(frame);
  });
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return;
    socket = null;
    clearInterval(pingTimer);
    hooks.onClose();
    if (event.code === 4401 || event.code === 4001) {
      // Logged out (here or in another tab): the page itself now needs a login.
      stop("You are logged out. Reload the page to log in again.");
      return;
    }
    if (event.code === 4429) {
      // Too many tabs open: wait long before trying again.
      toast("Too many open tabs: close some, and this one reconnects in a minute.");
      attempt = Math.max(attempt, 8);
    }
    scheduleReconnect(event.code === 4429 ? 60000 : 0);
  });
}

// Back from the background (a phone, a sleeping laptop): don't wait out the backoff.
export function wake() {
  if (!socket && !stopped) {
    attempt = 0;
    connect();
  }
}

function scheduleReconnect(atLeast = 0) {
  if (stopped) return;
  setState(navigator.onLine === false ? "offline" : "reconnecting");
  const base = Math.min(BACKOFF_CAP_MS, 500 * 2 ** attempt);
  const delay = Math.max(atLeast, base / 2 + Math.random() * (base / 2));
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

export function initSocket(options) {
  hooks = options;
  window.addEventListener("online", () => {
    if (!socket) {
      attempt = 0;
      connect();
    }
  });
  window.addEventListener("offline", () => {
    if (!socket) setState("offline");
  });
}
