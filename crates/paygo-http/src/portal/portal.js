// The billing portal's only script: checks a VAT ID as it is typed (the server answers with
// paygo-vat's verdict and, for a well-formed ID, the confirmation). The form works without it.
(function () {
  var field = document.getElementById("vat_id");
  var state = document.getElementById("vat-state");
  if (!field || !state) return;
  var timer = null;
  var asked = 0;
  field.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var id = field.value.trim();
      var mine = ++asked;
      if (id === "") {
        state.textContent = "No VAT ID: VAT of your country is charged.";
        return;
      }
      fetch("/portal/vat-check?id=" + encodeURIComponent(id), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          if (mine !== asked) return;
          state.textContent = answer.text;
          field.setAttribute("aria-invalid", answer.valid ? "false" : "true");
        })
        .catch(function () {});
    }, 300);
  });
})();
