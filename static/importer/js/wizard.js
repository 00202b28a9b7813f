// The create-import wizard's hosts step: choosing "Hosts per member volume" starts each
// member's row from the hosts chosen for every volume, so only the differences are clicked.
// Delegated: htmx swaps the wizard's steps in and out.
document.addEventListener("change", (event) => {
  const radio = event.target;
  if (!radio.matches('[data-member-hosts] input[type="radio"][value="each"]')) return;
  const group = radio.closest("[data-member-hosts]");
  const boxes = group.querySelectorAll('.ferry-member-table input[type="checkbox"]');
  if ([...boxes].some((box) => box.checked)) return; // the operator's own choice stays
  const common = new Set([...document.querySelectorAll('input[name="hosts"]:checked')]
    .map((box) => box.value));
  boxes.forEach((box) => { box.checked = common.has(box.value); });
});
