// "Bob is typing…" under the message list, from the others' typing frames.

import { el } from "./dom.js";
import { typingLine } from "./page.js";

const TYPING_SHOW_MS = 4000;
const typers = new Map(); // user id -> {name, timer}

export function showTyping(user) {
  const current = typers.get(user.id);
  if (current) clearTimeout(current.timer);
  typers.set(user.id, { name: user.display_name || user.username, timer: setTimeout(() => stopTyping(user.id), TYPING_SHOW_MS) });
  renderTyping();
}

export function stopTyping(userId) {
  const current = typers.get(userId);
  if (!current) return;
  clearTimeout(current.timer);
  typers.delete(userId);
  renderTyping();
}

// Each name in its own <bdi>, so a name's direction never reorders the words around it.
function renderTyping() {
  const names = Array.from(typers.values(), (t) => el("bdi", { text: t.name }));
  if (names.length === 1) typingLine.replaceChildren(names[0], " is typing…");
  else if (names.length === 2) typingLine.replaceChildren(names[0], " and ", names[1], " are typing…");
  else if (names.length > 2) typingLine.replaceChildren("Several people are typing…");
  else typingLine.replaceChildren();
}
