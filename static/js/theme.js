// Light or dark: follows the system unless the reader picked one with the ◐ button.
// Loaded in <head> so the chosen theme applies before the first paint.
(function () {
  "use strict";
  var KEY = "hobbies-theme";
  var root = document.documentElement;
  root.classList.add("js"); // styles for what only exists with scripts on
  var dark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value === "light" || value === "dark" ? value : null;
    } catch (e) {
      return null;
    }
  }

  function effective() {
    var chosen = stored();
    if (chosen) return chosen;
    return dark && dark.matches ? "dark" : "light";
  }

  function apply() {
    root.setAttribute("data-theme", stored() || "auto");
    var current = effective();
    var buttons = document.querySelectorAll("[data-theme-toggle]");
    for (var i = 0; i < buttons.length; i++) {
      var next = current === "dark" ? "light" : "dark";
      buttons[i].setAttribute("aria-label", "Switch to the " + next + " theme");
      buttons[i].setAttribute("title", "Switch to the " + next + " theme");
      buttons[i].setAttribute("aria-pressed", current === "dark" ? "true" : "false");
    }
  }

  function toggle() {
    var next = effective() === "dark" ? "light" : "dark";
    try {
      // Back to following the system when the choice matches it.
      var system = dark && dark.matches ? "dark" : "light";
      if (next === system) window.localStorage.removeItem(KEY);
      else window.localStorage.setItem(KEY, next);
    } catch (e) {
      root.setAttribute("data-theme", next);
      return;
    }
    apply();
  }

  apply();
  document.addEventListener("DOMContentLoaded", function () {
    apply();
    document.addEventListener("click", function (event) {
      var target = event.target;
      if (target && target.closest && target.closest("[data-theme-toggle]")) toggle();
    });
  });
  if (dark && dark.addEventListener) dark.addEventListener("change", apply);
  window.addEventListener("storage", function (event) {
    if (event.key === KEY) apply();
  });
})();
