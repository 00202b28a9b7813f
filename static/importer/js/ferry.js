// Ferry's dashboard behaviour: polling etiquette, confirmations, toasts, groups, theme.
(function () {
  "use strict";

  // Rows poll only while the tab is visible and no menu or dialog is open. The CSP allows
  // no eval, so this cannot be an hx-trigger filter ("every 2s [...]"): a due poll is
  // dropped here instead, and htmx tries again at the next tick.
  function mayPoll() {
    return document.visibilityState === "visible" &&
      !document.querySelector(".dropdown-menu.show, .modal.show");
  }
  document.body.addEventListener("htmx:confirm", function (event) {
    var trigger = event.detail.elt.getAttribute("hx-trigger") || "";
    if (trigger.indexOf("every ") === 0 && !mayPoll()) { event.preventDefault(); }
  });

  function csrfToken() {
    return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
  }

  function post(button, extra) {
    // The answer is the row as it is now: an expanded group's row comes back expanded.
    var row = document.querySelector(button.dataset.target);
    var members = row && row.classList.contains("ferry-group") && expanded.has(row.id);
    htmx.ajax("POST", button.dataset.url + (members ? "?members=true" : ""), {
      target: button.dataset.target, swap: "outerHTML",
      values: extra || {}, headers: { "X-CSRFToken": csrfToken() }
    });
  }

  // Import Actions: run at once, or after the confirmation dialog with the operator notes.
  var modalElement = document.getElementById("confirm-modal");
  var modal = modalElement && new bootstrap.Modal(modalElement);
  var pending = null;
  document.addEventListener("click", function (event) {
    var button = event.target.closest(".ferry-actions [data-url]");
    if (!button) { return; }
    if (!button.dataset.confirm) { post(button); return; }
    pending = button;
    bulkPending = null;
    formPending = null;
    nameDialog(button, "");
    document.getElementById("confirm-session").textContent = button.dataset.sessionName;
    document.getElementById("confirm-note").textContent = button.dataset.note;
    var forced = button.dataset.force === "true";
    document.getElementById("confirm-name-group").classList.toggle("d-none", !forced);
    var name = document.getElementById("confirm-name");
    name.value = "";
    name.required = forced;
    showManualStep(button.dataset.manualStep || "");
    syncSubmit();
    modal.show();
  });
  // The dialog's buttons say what they do (states.py declares the words): "Cancel import"
  // and "Keep importing", never "Cancel" and "Close".
  function nameDialog(button, suffix) {
    var confirmLabel = button.dataset.confirmLabel || button.dataset.label;
    document.getElementById("confirm-title").textContent = confirmLabel + suffix + "?";
    var submit = document.getElementById("confirm-submit");
    submit.textContent = confirmLabel;
    submit.classList.toggle("btn-danger", button.dataset.destructive === "true");
    submit.classList.toggle("btn-primary", button.dataset.destructive !== "true");
    document.getElementById("confirm-dismiss").textContent =
      button.dataset.dismissLabel || "Not now";
  }
  // A forced action runs only once the session's name is typed exactly.
  function syncSubmit() {
    var forced = pending && pending.dataset.force === "true";
    document.getElementById("confirm-submit").disabled = Boolean(forced) &&
      document.getElementById("confirm-name").value !== pending.dataset.sessionName;
  }
  var confirmName = document.getElementById("confirm-name");
  if (confirmName) { confirmName.addEventListener("input", syncSubmit); }
  // Deleting a remote system or a host: the same dialog, then the button's own form posts.
  var formPending = null;
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm-form]");
    if (!button) { return; }
    pending = null;
    bulkPending = null;
    formPending = button.form;
    nameDialog(button, "");
    document.getElementById("confirm-title").textContent = button.dataset.title;
    document.getElementById("confirm-session").textContent = button.dataset.sessionName;
    document.getElementById("confirm-note").textContent = button.dataset.note;
    document.getElementById("confirm-name-group").classList.add("d-none");
    document.getElementById("confirm-name").required = false;
    showManualStep("");
    syncSubmit();
    modal.show();
  });
  // A source Ferry cannot protect (an NBD server): the operator confirms the manual unmap.
  function showManualStep(step) {
    var box = document.getElementById("confirm-manual");
    document.getElementById("confirm-manual-group").classList.toggle("d-none", !step);
    document.getElementById("confirm-manual-step").textContent = step;
    box.checked = false;
    box.required = Boolean(step);
  }
  if (modalElement) {
    // Focus the safe button (or the name a forced action needs): Enter never confirms.
    modalElement.addEventListener("shown.bs.modal", function () {
      var forced = pending && pending.dataset.force === "true";
      document.getElementById(forced ? "confirm-name" : "confirm-dismiss").focus();
    });
    document.getElementById("confirm-form").addEventListener("submit", function (event) {
      event.preventDefault();
      if (formPending) { formPending.submit(); formPending = null; modal.hide(); return; }
      if (bulkPending) { runBulk(bulkPending); bulkPending = null; modal.hide(); return; }
      if (!pending) { return; }
      var extra = {};
      if (pending.dataset.force === "true") {
        extra = { force: "true", confirm_name: document.getElementById("confirm-name").value };
      }
      if (pending.dataset.manualStep) { extra.source_unmapped_confirmed = "true"; }
      post(pending, extra);
      pending = null;
      modal.hide();
    });
  }

  // Row checkboxes and bulk actions: the selection survives row polls.
  var selected = new Set();
  function syncSelection() {
    document.querySelectorAll(".ferry-row-select").forEach(function (box) {
      box.checked = selected.has(box.value);
    });
    var count = document.getElementById("selected-count");
    if (count) {
      count.textContent = selected.size ? selected.size + " selected" : "No imports selected";
    }
  }
  document.addEventListener("change", function (event) {
    if (event.target.classList.contains("ferry-row-select")) {
      if (event.target.checked) { selected.add(event.target.value); }
      else { selected.delete(event.target.value); }
    } else if (event.target.id === "select-all") {
      document.querySelectorAll(".ferry-row-select").forEach(function (box) {
        if (event.target.checked) { selected.add(box.value); } else { selected.delete(box.value); }
      });
    } else { return; }
    syncSelection();
  });
  document.body.addEventListener("htmx:afterSettle", syncSelection);
  var bulkPending = null;
  function runBulk(button) {
    htmx.ajax("POST", button.dataset.bulk, {
      target: "#bulk-results", swap: "innerHTML",
      values: { ids: Array.from(selected).join(",") }, headers: { "X-CSRFToken": csrfToken() }
    });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-bulk]");
    if (!button) { return; }
    if (!button.dataset.note) { runBulk(button); return; }
    bulkPending = button;
    pending = null;
    formPending = null;
    nameDialog(button, " (bulk)");
    document.getElementById("confirm-session").textContent = selected.size + " imports selected";
    document.getElementById("confirm-note").textContent = button.dataset.note;
    document.getElementById("confirm-name-group").classList.add("d-none");
    document.getElementById("confirm-name").required = false;
    showManualStep("");  // bulk never confirms a manual step: each needs its own dialog
    syncSubmit();
    modal.show();
  });
  document.body.addEventListener("ferry:refresh-table", function () {
    htmx.ajax("GET", window.location.pathname + window.location.search,
              { target: "#session-table", swap: "outerHTML" });
  });

  // Toasts: the server says what happened in an HX-Trigger "ferry:toast" event, or, after
  // a full page load, in Django's messages.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("template.ferry-message").forEach(function (message) {
      document.body.dispatchEvent(new CustomEvent("ferry:toast", {
        detail: { level: message.dataset.level, message: message.innerHTML.trim() } }));
    });
  });
  document.body.addEventListener("ferry:toast", function (event) {
    var toast = document.createElement("div");
    var level = event.detail.level || "info";
    toast.className = "toast align-items-center text-bg-" + level + " border-0";
    toast.setAttribute("role", level === "danger" || level === "warning" ? "alert" : "status");
    toast.innerHTML = '<div class="d-flex"><div class="toast-body"></div>' +
      '<button type="button" class="btn-close btn-close-white me-2 m-auto" data-bs-dismiss="toast" aria-label="Close"></button></div>';
    toast.querySelector(".toast-body").textContent = event.detail.message;
    document.getElementById("toasts").appendChild(toast);
    new bootstrap.Toast(toast, { delay: 8000 }).show();
    toast.addEventListener("hidden.bs.toast", function () { toast.remove(); });
  });

  // Groups expand to show their members. The server renders members only for groups that
  // ask (loadRow, or post above), a row rendered with its members asks for them again when
  // it polls (its hx-vals: JSON, since the CSP allows no js: values), and expansion is
  // remembered.
  var expanded = new Set(JSON.parse(sessionStorage.getItem("ferry-expanded") || "[]"));
  function loadRow(body) {
    htmx.ajax("GET", body.dataset.rowUrl + "?members=" + expanded.has(body.id),
              { target: "#" + body.id, swap: "outerHTML" });
  }
  function markExpanded() {
    document.querySelectorAll("tbody.ferry-group").forEach(function (body) {
      var toggle = body.querySelector(".ferry-expand");
      if (toggle) { toggle.setAttribute("aria-expanded", String(expanded.has(body.id))); }
    });
  }
  function showExpanded(root) {  // groups remembered as open get their members
    (root || document).querySelectorAll("tbody.ferry-group:not(.expanded)").forEach(
      function (body) { if (expanded.has(body.id)) { loadRow(body); } });
    markExpanded();
  }
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest(".ferry-expand");
    if (!toggle) { return; }
    var body = toggle.closest("tbody");
    if (expanded.has(body.id)) { expanded.delete(body.id); } else { expanded.add(body.id); }
    sessionStorage.setItem("ferry-expanded", JSON.stringify(Array.from(expanded)));
    loadRow(body);
  });
  document.body.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.target && event.detail.target.id === "session-table") { showExpanded(); }
    markExpanded();
  });
  showExpanded();

  // A <details data-keep-open="key"> the operator opened (Show key, Host commands) stays
  // open when the details panel polls and is swapped.
  var keptOpen = new Set();
  document.addEventListener("toggle", function (event) {
    var key = event.target.dataset && event.target.dataset.keepOpen;
    if (!key) { return; }
    if (event.target.open) { keptOpen.add(key); } else { keptOpen.delete(key); }
  }, true);  // toggle does not bubble
  document.body.addEventListener("htmx:afterSwap", function () {
    document.querySelectorAll("details[data-keep-open]").forEach(function (details) {
      if (keptOpen.has(details.dataset.keepOpen)) { details.open = true; }
    });
  });

  // Light and dark mode toggle (theme.js applies it before the first paint).
  var themeToggle = document.getElementById("theme-toggle");
  if (themeToggle) {
    themeToggle.addEventListener("click", function () {
      var next = document.documentElement.getAttribute("data-bs-theme") === "dark" ? "light" : "dark";
      document.documentElement.setAttribute("data-bs-theme", next);
      localStorage.setItem("ferry-theme", next);
    });
  }

  // The remote-system form shows the fields of the chosen driver only.
  function showDriverFields(form) {
    var select = form.querySelector("[name=driver_type]");
    form.querySelectorAll("[data-driver]").forEach(function (field) {
      field.hidden = field.dataset.driver !== select.value;
    });
  }
  document.querySelectorAll(".ferry-system-form").forEach(function (form) {
    showDriverFields(form);
    form.querySelector("[name=driver_type]").addEventListener("change", function () {
      showDriverFields(form);
    });
  });
})();
