// What the buttons on a message do: reply, react (with the emoji picker), edit, delete, and
// toggling a reaction; a click on a reply's quote scrolls to the original.

import { setReply, startEdit } from "./composer.js";
import { el } from "./dom.js";
import { moderationAction } from "./moderation.js";
import { list, pane } from "./page.js";
import { sendFrame } from "./socket.js";

const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

let picker = null;

export function pickerOpen() {
  return picker !== null;
}

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

export function initActions() {
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
      else if (moderationAction(kind, node)) return;
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
}
