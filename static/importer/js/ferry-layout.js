// Ferry's layout and keyboard behaviour: the details slide-out, focus that comes back to
// where it was, and the state chips as one Tab stop.
// (Focus across polls needs no code here: htmx gives the focus back to the element with
// the same id after a swap, so every control in a row has a stable id.)
(function () {
  "use strict";

  function focusById(id) {
    var element = id && document.getElementById(id);
    if (element) { element.focus(); }
    return Boolean(element);
  }

  // A dialog opened from a menu gives the focus back to the menu's button when it closes
  // (Escape, Close or done): the menu item itself is hidden by then.
  var dialogOpener = null;
  document.addEventListener("click", function (event) {
    var item = event.target.closest(".ferry-actions [data-url], [data-bulk]");
    if (!item) { return; }
    var menu = item.closest(".dropdown");
    var toggle = menu && menu.querySelector("[data-bs-toggle='dropdown']");
    dialogOpener = toggle ? toggle.id : null;
  }, true);  // before ferry.js opens the dialog
  document.addEventListener("hidden.bs.modal", function (event) {
    if (event.target.id === "confirm-modal") { focusById(dialogOpener); }
  });

  // The details slide-out: a row (or its Details button) loads the session's summary beside
  // the list; the summary polls itself while the session is active. Closing it (Escape,
  // the close button) gives the focus back to the row's Details button.
  var slideout = document.getElementById("details-slideout");
  var slideoutOpener = null;
  function openDetails(row, openerId) {
    var name = row.querySelector(".ferry-name");
    slideoutOpener = openerId;
    document.getElementById("details-slideout-title").textContent =
      name ? name.textContent : "Details";
    htmx.ajax("GET", row.dataset.detailsUrl,
              { target: "#details-slideout-body", swap: "innerHTML" });
    var panel = bootstrap.Offcanvas.getOrCreateInstance(slideout);
    if (slideout.classList.contains("show")) {
      document.getElementById("details-slideout-close").focus();
    } else {
      panel.show();
    }
  }
  if (slideout) {
    document.addEventListener("click", function (event) {
      var row = event.target.closest("tbody.ferry-session tr[data-session]");
      if (!row) { return; }
      var button = event.target.closest(".ferry-details");
      if (!button && event.target.closest("a, button, input, label, select, .dropdown-menu")) {
        return;  // the row's own controls keep their own meaning
      }
      openDetails(row, button ? button.id : "details-" + row.dataset.session);
    });
    slideout.addEventListener("shown.bs.offcanvas", function () {
      // Not modal (the list stays in use beside it), so not aria-modal either.
      slideout.removeAttribute("aria-modal");
      document.getElementById("details-slideout-close").focus();
    });
    slideout.addEventListener("hidden.bs.offcanvas", function () {
      document.getElementById("details-slideout-body").innerHTML = "";  // stops its polling
      focusById(slideoutOpener);
    });
  }

  // The state chips are one Tab stop (a toolbar): arrow keys, Home and End move between them.
  var steps = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
  document.querySelectorAll("[data-roving]").forEach(function (group) {
    var inputs = Array.prototype.slice.call(group.querySelectorAll("input"));
    if (!inputs.length) { return; }
    var current = inputs.filter(function (input) { return input.checked; })[0] || inputs[0];
    inputs.forEach(function (input) { input.tabIndex = input === current ? 0 : -1; });
    group.addEventListener("keydown", function (event) {
      var index = inputs.indexOf(document.activeElement);
      if (index < 0 || !(event.key in steps || event.key === "Home" || event.key === "End")) {
        return;
      }
      var next = event.key === "Home" ? 0 : event.key === "End" ? inputs.length - 1 :
        (index + steps[event.key] + inputs.length) % inputs.length;
      event.preventDefault();
      event.stopPropagation();  // Bootstrap's dropdown would move by its own rules
      inputs[index].tabIndex = -1;
      inputs[next].tabIndex = 0;
      inputs[next].focus();
    });
  });

  // The compact state filter (below 768 px) says how many states are chosen.
  document.addEventListener("change", function (event) {
    if (event.target.name !== "state" || !event.target.closest(".ferry-state-filter")) { return; }
    var chosen = document.querySelectorAll(".ferry-state-filter input:checked").length;
    document.getElementById("state-filter-summary").textContent =
      chosen ? chosen + " chosen" : "all";
  });
})();
