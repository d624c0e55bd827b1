// Parley console: the little htmx does not do (copy to clipboard). No inline handlers: CSP.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var status = button.parentElement.querySelector(".copied");
    var done = function () { if (status) status.textContent = "Copied."; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value || source.textContent).then(done, function () {
        source.select(); document.execCommand("copy"); done();
      });
    } else {
      source.select(); document.execCommand("copy"); done();
    }
  });
})();

// Drop a file onto the upload form: it becomes the form's file, as if chosen in the picker.
(function () {
  "use strict";
  function zone(target) { return target.closest ? target.closest("form.drop") : null; }
  document.addEventListener("dragover", function (event) {
    var form = zone(event.target);
    if (!form) return;
    event.preventDefault();
    form.classList.add("dragging");
  });
  document.addEventListener("dragleave", function (event) {
    var form = zone(event.target);
    if (form) form.classList.remove("dragging");
  });
  document.addEventListener("drop", function (event) {
    var form = zone(event.target);
    if (!form || !event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    form.classList.remove("dragging");
    var input = form.querySelector("input[type=file]");
    input.files = event.dataTransfer.files;
    var status = form.querySelector(".dropped");
    if (status) status.textContent = "Ready to upload: " + input.files[0].name;
  });
})();
