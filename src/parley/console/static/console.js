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

// Inbox shortcuts (when no field has the focus): j / k next and previous conversation,
// r the reply box, t take over. Listed on the page (`.shortcuts`).
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var active = document.activeElement;
    if (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return;
    if (!document.querySelector(".inbox")) return;
    var links = Array.prototype.slice.call(document.querySelectorAll(".conv-list a"));
    var open = document.querySelector(".conv-list li.open a");
    var index = links.indexOf(open);
    var go = null;
    if (event.key === "j") go = links[Math.min(links.length - 1, index + 1)];
    if (event.key === "k") go = links[Math.max(0, index - 1)];
    if (go) { event.preventDefault(); go.click(); return; }
    if (event.key === "r") {
      var box = document.getElementById("reply-body");
      if (box) { event.preventDefault(); box.focus(); }
    }
    if (event.key === "t") {
      var take = document.querySelector("form[action$='/assign'] button");
      if (take) { event.preventDefault(); take.click(); }
    }
  });
})();

// The widget's live preview: the frame shows the real widget with the theme the form holds;
// typing reloads it (debounced) with the fields as query parameters. No saving involved.
(function () {
  "use strict";
  var timer = null;
  function refresh(form) {
    var frame = document.getElementById(form.getAttribute("data-preview"));
    if (!frame) return;
    var query = [];
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name && field.name.indexOf("theme.") === 0 && field.value) {
        query.push(encodeURIComponent(field.name) + "=" + encodeURIComponent(field.value));
      }
    });
    frame.src = frame.getAttribute("data-base") + (query.length ? "?" + query.join("&") : "");
  }
  function changed(event) {
    var form = event.target.closest ? event.target.closest("form[data-preview]") : null;
    if (!form) return;
    clearTimeout(timer);
    timer = setTimeout(function () { refresh(form); }, 250);
  }
  document.addEventListener("input", changed);
  document.addEventListener("change", changed);
})();
