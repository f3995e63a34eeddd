// The channel page, made live: one WebSocket per tab (protocol in docs/protocol.md).
// The page works without these scripts (the composer is a plain form); they add live messages,
// sending without reloads, edits, reactions, replies, typing, presence and unread badges.
//
// Modules, lowest first: dom, page (the page's elements), socket, typing, sidebar, messages,
// composer (with attachments), actions, panes, channels; this one starts them and routes the frames.

import { initActions } from "./actions.js";
import { channelDeleted, channelUpdated } from "./channels.js";
import {
  acknowledge,
  dropReplyTo,
  failPending,
  flowOutcome,
  holdPending,
  initComposer,
  readyComposer,
  requeueSent,
  resendPending,
} from "./composer.js";
import {
  catchUp,
  initHistory,
  initMessages,
  maybeRead,
  noteNewest,
  noteRead,
  onNewMessage,
  preservingScroll,
  replaceMessage,
  seen,
  showMessages,
} from "./messages.js";
import { channelId, communityId, me, root, toast } from "./page.js";
import { moderationFrame, noteOwnSend, noteSendError } from "./moderation.js";
import { initPanes } from "./panes.js";
import { initSequence, noteHead, noteSeq, resumePoint } from "./sequence.js";
import { connect, initSocket, isOpen, send, setState, stop, wake } from "./socket.js";
import { bumpUnread, clearUnread, initSidebar, otherChannelIds, setPresence } from "./sidebar.js";
import { showTyping } from "./typing.js";

if (root) start();

function start() {
  initMessages();
  initSequence(refill);
  initSocket({ onOpen, onFrame: handle, onClose: requeueSent });
  initSidebar();
  window.addEventListener("focus", () => {
    seen();
    maybeRead();
  });
  document.addEventListener("visibilitychange", () => {
    seen();
    maybeRead();
    if (!document.hidden) wake();
  });
  initHistory();
  initComposer();
  initActions();
  initPanes();

  showMessages();
  readyComposer();
  root.dataset.ready = "1";
  setState("reconnecting");
  connect();
}

// A position is missing: subscribe again from the last one held, and the server replays the rest.
function refill(from) {
  if (isOpen()) send({ type: "subscribe", channel: channelId, seq: from });
}

function onOpen() {
  setPresence(me, true); // our own announcement went out before we listened
  // The open channel replays everything after the last position held with none missing below
  // it; the others only keep their unread badges live.
  send({ type: "subscribe", channel: channelId, seq: resumePoint() });
  for (const id of otherChannelIds()) send({ type: "subscribe", channel: id, since: null });
  resendPending();
}

// --- Incoming frames -----------------------------------------------------------------------

function handle(frame) {
  if (moderationFrame(frame)) return;
  switch (frame.type) {
    case "message.new":
      if (frame.message.channel === channelId) {
        onNewMessage(frame.message);
        noteSeq(frame.message.seq);
      } else bumpUnread(frame.message);
      break;
    case "head":
      if (frame.channel === channelId) noteHead(frame.seq);
      break;
    case "message.updated":
    case "message.deleted":
    case "reaction":
      if (frame.message.channel === channelId) {
        preservingScroll(() => replaceMessage(frame.message));
        if (frame.type === "message.deleted") dropReplyTo(frame.message.id);
      }
      break;
    case "message.ack":
      if (frame.status === "pending") {
        holdPending(frame.client_id, frame.detail);
        noteOwnSend();
        break;
      }
      acknowledge(frame.client_id, frame.message);
      noteOwnSend();
      if (frame.message && frame.message.channel === channelId) noteSeq(frame.message.seq);
      break;
    case "message.status":
      flowOutcome(frame);
      if (frame.message && frame.message.channel === channelId) noteSeq(frame.message.seq);
      break;
    case "subscribed":
      if (frame.channel === channelId) {
        if (frame.truncated) {
          // Too far behind to replay: load the rest over HTTP, then hold everything up to the head.
          const head = frame.last_seq;
          catchUp().then((done) => done && noteHead(head, { covered: true }));
        } else {
          noteNewest(frame.last_id || 0);
          noteHead(frame.last_seq, { covered: true });
        }
        maybeRead();
      }
      break;
    case "unsubscribed":
      if (frame.reason === "deleted") {
        channelDeleted(frame.channel);
        if (frame.channel === channelId) stop("This channel was deleted.");
      } else if (frame.channel === channelId && frame.reason === "removed") {
        stop("You no longer have access to this channel.");
      }
      break;
    case "channel.updated":
      channelUpdated(frame.channel);
      break;
    case "typing":
      if (frame.channel === channelId && frame.user.id !== me) showTyping(frame.user);
      break;
    case "presence":
      if (frame.community === communityId) setPresence(frame.user.id, frame.online);
      break;
    case "read":
      if (frame.channel !== channelId) clearUnread(frame.channel);
      else noteRead(frame.message);
      break;
    case "error":
      onError(frame);
      break;
    default:
      break; // pong and anything newer than these scripts
  }
}

function onError(frame) {
  noteSendError(frame);
  if (failPending(frame.ref, frame.detail)) return;
  if (frame.ref === "subscribe" && frame.code === "rate_limited") {
    // Too much replayed lately: ask again when the server says.
    setTimeout(() => refill(resumePoint()), (frame.retry_after || 5) * 1000);
    return;
  }
  if (frame.ref === "typing" || frame.ref === "read" || frame.ref === "ping" || frame.ref === "message.status") return;
  if (frame.ref === "subscribe" && frame.code === "not_found") return;
  toast(frame.detail || "Something went wrong.");
}
