// Positions of the open channel's messages, so that none is ever missed (docs/protocol.md,
// "Nothing missed"). Every message has a position in its channel: 1, 2, 3… with no gaps. The page
// knows it holds every position up to `contiguous`; a message or a `head` frame beyond the next
// one means something is missing, and after a short grace (live frames from two server processes
// may arrive out of order) the page subscribes again from `contiguous` and the server replays
// the rest. Reconnects resume from `contiguous` too, never from the newest message seen.

import { root } from "./page.js";

const GRACE_MS = 1500;

let contiguous = 0;
const held = new Set(); // positions above `contiguous` already here
let fillTimer = null;
let fill = () => {};

export function initSequence(onGap) {
  contiguous = Number(root.dataset.lastSeq) || 0;
  fill = onGap;
}

// Where a (re)subscribe resumes from.
export function resumePoint() {
  return contiguous;
}

// A message of the open channel arrived (live, replayed, or our own acknowledged).
export function noteSeq(seq) {
  if (!Number.isInteger(seq) || seq <= contiguous) return;
  held.add(seq);
  advance();
}

// The server says the channel has messages up to `seq` (on subscribe, or a `head` frame).
export function noteHead(seq, { covered = false } = {}) {
  if (!Number.isInteger(seq)) return;
  if (covered) {
    // A subscribe replayed everything up to `seq`: those are all here now.
    contiguous = Math.max(contiguous, seq);
    advance();
    return;
  }
  if (seq > contiguous) scheduleFill(0);
}

function advance() {
  for (const seq of held) if (seq <= contiguous) held.delete(seq);
  while (held.has(contiguous + 1)) {
    held.delete(contiguous + 1);
    contiguous += 1;
  }
  if (held.size) scheduleFill(GRACE_MS);
  else cancelFill();
}

function scheduleFill(delay) {
  if (fillTimer) return;
  fillTimer = setTimeout(() => {
    fillTimer = null;
    fill(contiguous);
  }, delay);
}

function cancelFill() {
  clearTimeout(fillTimer);
  fillTimer = null;
}
