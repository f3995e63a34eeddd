// The channel page's elements and ids (templates/chat/channel.html), looked up once.
// On any other page these are null; main.js starts nothing there.

import { el } from "./dom.js";

export const root = document.getElementById("chat");
const data = root ? root.dataset : {};

export const me = Number(data.userId);
export const channelId = Number(data.channelId);
export const communityId = Number(data.communityId);
export const maxLength = Number(data.maxLength) || 4000;

export const scroller = document.getElementById("messages");
export const list = document.getElementById("message-list");
export const form = document.getElementById("composer");
export const input = document.getElementById("composer-input");
export const replyInput = document.getElementById("reply-to");
export const replyPreview = document.getElementById("reply-preview");
export const countLabel = document.getElementById("composer-count");
export const conn = document.getElementById("conn");
export const typingLine = document.getElementById("typing");
export const pane = root ? root.querySelector(".pane--messages") : null;

let toastTimer = null;
export function toast(text) {
  let node = pane.querySelector(".toast");
  if (!node) {
    node = el("div", { class: "toast", role: "alert", dir: "auto" });
    pane.append(node);
  }
  node.textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => node.remove(), 5000);
}
