// The Alerts page: "select all" ticks every alert on the page that can be acknowledged.
(function () {
  const all = document.getElementById("alert-select-all");
  if (!all) return;
  all.addEventListener("change", () => {
    document.querySelectorAll(".ferry-alert-check").forEach((box) => { box.checked = all.checked; });
  });
})();
