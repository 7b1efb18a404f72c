// The admin's only script, served from /admin/static/admin.js (the admin CSP allows no
// inline script). Two jobs, both optional: without JavaScript every page still works.
//  1. Forms with data-confirm ask first ("Send now", "Cancel"): these cannot be undone.
//  2. The edition page's progress box follows a send: it polls the progress JSON every
//     1.5 s while the edition is scheduled, sending or paused, and stops once it is not.
(function () {
  "use strict";

  var LIVE = ["scheduled", "sending", "paused"];
  var POLL_MS = 1500;

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  var box = document.getElementById("progress");
  if (!box || box.getAttribute("data-live") !== "true") {
    return;
  }

  var numbers = new Intl.NumberFormat();

  function duration(seconds) {
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function show(name, value) {
    var field = box.querySelector('[data-field="' + name + '"]');
    if (field) field.textContent = value;
  }

  var firstStatus = box.querySelector('[data-field="status"]').textContent;

  function update(state) {
    ["sent", "maybe_duplicate", "failed", "uncertain", "skipped", "remaining", "total"].forEach(function (name) {
      show(name, numbers.format(state[name]));
    });
    show("percent", state.percent + "%");
    show("status", state.status);
    show("rate", state.rate_per_s ? state.rate_per_s + " msgs/s" : "—");
    show("eta", state.eta_s ? duration(state.eta_s) : "—");
    document.getElementById("progress-bar").value = state.percent;
    var badge = document.getElementById("status-badge");
    if (badge) {
      badge.textContent = state.status;
      badge.className = "badge " + state.status;
    }
    if (state.status !== firstStatus) {
      // The buttons on the page belong to the old status: offer a reload, do not force one
      // (the editor may be typing in a form).
      show("new-status", state.status);
      document.getElementById("status-changed").hidden = false;
    }
  }

  function poll() {
    fetch(box.getAttribute("data-url"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("progress: HTTP " + response.status);
        return response.json();
      })
      .then(function (state) {
        update(state);
        if (LIVE.indexOf(state.status) !== -1) window.setTimeout(poll, POLL_MS);
      })
      .catch(function () {
        // A restart or a dropped connection: try again a little later.
        window.setTimeout(poll, POLL_MS * 4);
      });
  }

  window.setTimeout(poll, POLL_MS);
})();
