// The admin's only script, served from /admin/static/admin.js (the admin CSP allows no
// inline script). Two jobs, both optional: without JavaScript every page still works.
//  1. Forms with data-confirm ask first ("Send now", "Cancel"): these cannot be undone.
//  2. The edition page follows a send: it polls the progress JSON every 1.5 s while the
//     edition is scheduled, sending or paused, and stops once it is not. When the status
//     changes, it fetches the page's status-dependent parts (facts, buttons, posts, forms:
//     elements with data-part) from /controls and swaps in those that changed, so the page
//     offers what the edition can do now, as a reload would.
(function () {
  "use strict";

  var LIVE = ["scheduled", "sending", "paused"];
  var POLL_MS = 1500;

  // On the document, so that forms swapped in later ask too.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
    if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
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

  // The status the page's parts were made for, and the latest the progress reported.
  var partsStatus = box.querySelector('[data-field="status"]').textContent;
  var latestStatus = partsStatus;
  var fetching = false;

  function swapParts(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var lostFocus = false;
    fresh.querySelectorAll("[data-part]").forEach(function (part) {
      var current = document.getElementById(part.id);
      if (!current || current.isEqualNode(part)) return;
      lostFocus = lostFocus || current.contains(document.activeElement);
      current.replaceWith(document.importNode(part, true));
    });
    if (lostFocus) {
      // The focused button went with its part: keep the keyboard near where it was.
      box.setAttribute("tabindex", "-1");
      box.focus({ preventScroll: true });
    }
    var root = fresh.querySelector("[data-status]");
    return root ? root.getAttribute("data-status") : latestStatus;
  }

  function followStatus() {
    if (fetching || latestStatus === partsStatus) return;
    fetching = true;
    fetch(box.getAttribute("data-controls-url"), { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("controls: HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        fetching = false;
        partsStatus = swapParts(html);
        followStatus(); // it may have moved on again meanwhile
      })
      .catch(function () {
        fetching = false;
        window.setTimeout(followStatus, POLL_MS * 4);
      });
  }

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
    latestStatus = state.status;
    followStatus();
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
