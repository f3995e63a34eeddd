// Moderation on the channel page: the report button (everyone, on others' messages) and the
// remove button (moderators), the queue badge, slow mode's wait, and the frames that tell a
// member about reports, warnings, timeouts and held messages (docs/moderation.md).

import { el } from "./dom.js";
import { channelId, communityId, form, root, toast } from "./page.js";
import { sendFrame } from "./socket.js";

const data = root ? root.dataset : {};
const canModerate = data.canModerate === "1";
let slowMode = Number(data.slowMode) || 0;
let waitTimer = null;

const REASONS = [
  ["spam", "Spam or advertising"],
  ["harassment", "Harassment or bullying"],
  ["hate", "Hate speech"],
  ["explicit", "Sexual or violent content"],
  ["other", "Something else"],
];

const DONE = {
  "message.remove": "Message removed.",
  "message.restore": "Message restored.",
  "message.report": "Thanks: the moderators will look at it.",
};

// Buttons added to a message's action group (messages.js `decorate`).
export function moderationButtons(node, actions, mine) {
  if (!mine) {
    actions.append(el("button", { type: "button", class: "msg__action", "data-action": "report", title: "Report to the moderators", "aria-label": "Report", text: "⚑" }));
  }
  if (canModerate) {
    actions.append(el("button", { type: "button", class: "msg__action msg__action--danger", "data-action": "remove", title: "Remove (moderator)", "aria-label": "Remove as moderator", text: "⛔" }));
  }
}

// A click on one of those buttons (actions.js); true if it was one.
export function moderationAction(kind, node) {
  const id = Number(node.dataset.id);
  if (kind === "remove") {
    const reason = window.prompt("Remove this message for everyone? Reason (optional):", "");
    if (reason !== null) sendFrame({ type: "message.remove", message: id, reason });
    return true;
  }
  if (kind === "report") {
    openReport(id);
    return true;
  }
  return false;
}

function openReport(id) {
  const select = el("select", { name: "reason", "aria-label": "Reason" });
  for (const [value, label] of REASONS) select.append(el("option", { value, text: label }));
  const note = el("textarea", { name: "note", maxlength: "500", rows: "3", "aria-label": "Note for the moderators (optional)" });
  const dialog = el(
    "dialog",
    { class: "report-dialog", "aria-label": "Report a message" },
    el(
      "form",
      { method: "dialog" },
      el("h2", { text: "Report this message" }),
      select,
      note,
      el(
        "p",
        {},
        el("button", { type: "submit", class: "btn btn--primary", value: "report", text: "Report" }),
        el("button", { type: "submit", class: "btn", value: "cancel", text: "Cancel" }),
      ),
    ),
  );
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "report") sendFrame({ type: "message.report", message: id, reason: select.value, note: note.value });
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
}

// --- Slow mode -----------------------------------------------------------------------------

function waitUntil(until) {
  const button = form && form.querySelector("button[type=submit]");
  const label = document.getElementById("slow-mode-wait");
  clearInterval(waitTimer);
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(waitTimer);
      if (button) button.disabled = false;
      if (label) label.textContent = "";
      return;
    }
    if (button) button.disabled = true;
    if (label) label.textContent = `You can post again in ${left} s.`;
  };
  tick();
  waitTimer = setInterval(tick, 1000);
}

// Our own message was acknowledged: in slow mode, the composer waits.
export function noteOwnSend() {
  if (slowMode > 0 && !canModerate) waitUntil(Date.now() + slowMode * 1000);
}

// An `error` frame about a send: slow mode and timeouts carry `until`.
export function noteSendError(frame) {
  if (frame.code === "slow_mode" && frame.until) waitUntil(new Date(frame.until).getTime());
  if (frame.code === "timed_out" && frame.until) showTimeout(frame.until);
}

function showTimeout(until) {
  let note = document.getElementById("timeout-note");
  const text = `A moderator timed you out until ${new Date(until).toLocaleString()}: you can read, but not post, react or edit.`;
  if (!note && form) {
    note = el("p", { class: "composer composer--readonly muted", id: "timeout-note" });
    form.before(note);
  }
  if (note) note.textContent = text;
}

// --- Frames --------------------------------------------------------------------------------

// Frames of the moderation features; true if handled.
export function moderationFrame(frame) {
  switch (frame.type) {
    case "done":
      toast(DONE[frame.action] || "Done.");
      return true;
    case "moderation.queue": {
      const badge = document.getElementById("queue-badge");
      if (badge && frame.community === communityId) {
        const open = frame.reports + frame.held;
        badge.textContent = String(open);
        badge.classList.toggle("is-hidden", open === 0);
      }
      return true;
    }
    case "report.resolved":
      toast(frame.detail);
      return true;
    case "warning":
      if (frame.community === communityId) toast(`A moderator warned you: ${frame.detail}`);
      return true;
    case "restriction":
      if (frame.community === communityId) {
        if (frame.kind === "timeout") showTimeout(frame.until);
        else if (frame.kind === "timeout_end") {
          const note = document.getElementById("timeout-note");
          if (note) note.remove();
          toast("Your timeout has ended.");
        }
      }
      return true;
    case "held.decided":
      toast(frame.approved ? "A moderator approved your message." : "A moderator rejected your message.");
      return true;
    case "channel.updated":
      if (frame.channel === channelId && typeof frame.slow_mode === "number") slowMode = frame.slow_mode;
      return true;
    default:
      return false;
  }
}
