// Files in the composer: pick, drop or paste them; each one uploads at once, with a progress
// bar and a cancel button, and the message is sent when its uploads are done.
//
// Upload API (docs/api.md): POST /api/attachments/ says where to send the bytes (our own URL,
// or a presigned POST straight to S3); the file goes there as a multipart form; then
// POST /api/attachments/<id>/confirm/ checks it. The ids go in message.send's `attachments`.
// Without JavaScript the composer's file input posts the files with the form instead.

const form = document.getElementById("composer");
const input = document.getElementById("composer-input");
const picker = document.getElementById("composer-files");
const uploads = new Map(); // local key -> {file, id, state, xhr, done, node}
let tray = null;
let counter = 0;

if (form && picker) enhance();

function enhance() {
  // The picker now uploads at once; it no longer travels with the form.
  picker.removeAttribute("name");
  picker.addEventListener("change", () => {
    addFiles(picker.files);
    picker.value = "";
  });
  const dropZone = form.closest(".pane--messages") || form;
  dropZone.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dropZone.classList.add("is-dropping");
  });
  dropZone.addEventListener("dragleave", (event) => {
    if (event.target === dropZone) dropZone.classList.remove("is-dropping");
  });
  dropZone.addEventListener("drop", (event) => {
    dropZone.classList.remove("is-dropping");
    if (!hasFiles(event)) return;
    event.preventDefault();
    addFiles(event.dataTransfer.files);
  });
  if (input) {
    input.addEventListener("paste", (event) => {
      const files = event.clipboardData ? event.clipboardData.files : null;
      if (files && files.length) {
        event.preventDefault();
        addFiles(files);
      }
    });
  }
}

function hasFiles(event) {
  return event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
}

// Ids of this message's uploads, once all are done; null if one failed (it stays in the tray,
// with its error, until the user removes it). Empties the tray.
export async function attachmentsForSend() {
  const entries = Array.from(uploads.values());
  if (!entries.length) return [];
  setBusy(true);
  await Promise.allSettled(entries.map((entry) => entry.done));
  setBusy(false);
  if (entries.some((entry) => entry.state !== "ready")) {
    const failed = entries.find((entry) => entry.state !== "ready");
    if (failed && failed.node) failed.node.querySelector("button").focus();
    return null;
  }
  for (const [key, entry] of uploads) {
    entry.node.remove();
    uploads.delete(key);
  }
  refresh();
  return entries.map((entry) => entry.id);
}

function setBusy(busy) {
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = busy;
  form.classList.toggle("is-uploading", busy);
}

function addFiles(fileList) {
  for (const file of Array.from(fileList || [])) {
    const key = String(++counter);
    const entry = { file, id: null, state: "uploading", xhr: null, node: itemNode(key, file) };
    uploads.set(key, entry);
    entry.done = upload(entry).then(
      () => {
        entry.state = "ready";
        show(entry, "ready", "Ready");
      },
      (error) => {
        if (entry.state === "cancelled") return;
        entry.state = "failed";
        show(entry, "failed", error.message || "Upload failed.");
      },
    );
  }
  refresh();
}

function refresh() {
  // A message may be only files: the text is then optional.
  if (input) input.required = uploads.size === 0;
  if (tray) tray.hidden = uploads.size === 0;
}

function itemNode(key, file) {
  if (!tray) {
    tray = document.createElement("ul");
    tray.className = "uploads";
    tray.id = "uploads";
    tray.setAttribute("aria-label", "Files to send");
    form.insertBefore(tray, input || form.firstChild);
  }
  const node = document.createElement("li");
  node.className = "upload";
  node.dataset.state = "uploading";
  const name = document.createElement("span");
  name.className = "upload__name";
  name.dir = "auto";
  name.textContent = file.name || "pasted file";
  const bar = document.createElement("progress");
  bar.className = "upload__bar";
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-label", `Uploading ${name.textContent}`);
  const status = document.createElement("span");
  status.className = "upload__status muted small";
  status.setAttribute("role", "status");
  status.textContent = "Uploading…";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "linklike upload__cancel";
  cancel.textContent = "✕";
  cancel.setAttribute("aria-label", `Remove ${name.textContent}`);
  cancel.addEventListener("click", () => remove(key));
  node.append(name, bar, status, cancel);
  tray.append(node);
  return node;
}

function show(entry, state, text) {
  entry.node.dataset.state = state;
  entry.node.querySelector(".upload__status").textContent = text;
  if (state === "ready") entry.node.querySelector("progress").value = 100;
}

function remove(key) {
  const entry = uploads.get(key);
  if (!entry) return;
  uploads.delete(key);
  entry.state = "cancelled";
  if (entry.xhr) entry.xhr.abort();
  if (entry.id) api(`/api/attachments/${entry.id}/`, { method: "DELETE" }).catch(() => {});
  entry.node.remove();
  refresh();
}

async function upload(entry) {
  const { file } = entry;
  const started = await api("/api/attachments/", {
    method: "POST",
    body: { name: file.name || "pasted-file", size: file.size, content_type: file.type || "" },
  });
  entry.id = started.attachment.id;
  if (entry.state === "cancelled") throw new Error("Cancelled.");
  await send(entry, started.upload);
  if (entry.state === "cancelled") throw new Error("Cancelled.");
  await api(`/api/attachments/${entry.id}/confirm/`, { method: "POST" });
}

function send(entry, target) {
  return new Promise((resolve, reject) => {
    const data = new FormData();
    for (const [name, value] of Object.entries(target.fields)) data.append(name, value);
    data.append(target.file_field || "file", entry.file);
    const xhr = new XMLHttpRequest();
    entry.xhr = xhr;
    xhr.open(target.method || "POST", target.url);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) {
        entry.node.querySelector("progress").value = Math.round((100 * event.loaded) / event.total);
      }
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new Error(errorDetail(xhr.responseText) || `Upload failed (${xhr.status}).`));
    });
    xhr.addEventListener("error", () => reject(new Error("Upload failed: file storage is unreachable.")));
    xhr.addEventListener("abort", () => reject(new Error("Cancelled.")));
    xhr.send(data);
  });
}

function errorDetail(text) {
  try {
    return JSON.parse(text).error.detail;
  } catch {
    return "";
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const field = form.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((data.error && data.error.detail) || `Request failed (${response.status}).`);
  return data;
}
