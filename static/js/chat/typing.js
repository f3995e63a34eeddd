// "Bob is typing…" under the message list, from the others' typing frames.

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

function renderTyping() {
  const names = Array.from(typers.values(), (t) => t.name);
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  typingLine.textContent = text;
}
