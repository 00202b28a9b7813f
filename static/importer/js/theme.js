// Light or dark before the first paint: the saved choice, else the system's preference.
(function () {
  var saved = localStorage.getItem("ferry-theme");
  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.setAttribute("data-bs-theme", saved || (dark ? "dark" : "light"));
})();
