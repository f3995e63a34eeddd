// On narrow screens the channel and member lists slide in over the messages.

import { pickerOpen } from "./actions.js";
import { root } from "./page.js";

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

export function initPanes() {
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
    if (pickerOpen()) return;
    if (root.classList.contains("show-channels") || root.classList.contains("show-members")) {
      const which = root.classList.contains("show-channels") ? "channels" : "members";
      setPane(null);
      const button = root.querySelector(`[data-toggle="${which}"]`);
      if (button) button.focus();
    }
  });
}
