// Live updates for the explorer's pages. Every page is complete without
// this script; with it, each element marked `data-live` is refreshed from
// a fresh copy of the same page when the node announces a block or a
// transaction (Server-Sent Events at /api/events).
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch || !window.DOMParser) return;
  var status = document.getElementById("live-status");
  var pending = false;
  var last = 0;
  var MIN_GAP_MS = 1500;

  function say(text, on) {
    if (!status) return;
    status.textContent = text;
    status.className = on ? "on" : "";
  }

  function refresh() {
    pending = false;
    last = Date.now();
    fetch(window.location.href, { headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var next = fresh.getElementById(el.id);
          if (next) el.replaceWith(document.importNode(next, true));
        });
        say("Live: updated " + new Date().toLocaleTimeString(), true);
      })
      .catch(function () { say("Live: refresh failed; reload the page", false); });
  }

  // Blocks can arrive in bursts (sync, regtest): refresh at most every
  // MIN_GAP_MS, and always once after the last event.
  function schedule() {
    if (pending) return;
    pending = true;
    setTimeout(refresh, Math.max(0, last + MIN_GAP_MS - Date.now()));
  }

  var source = new EventSource("/api/events");
  source.addEventListener("open", function () { say("Live: connected", true); });
  source.addEventListener("block", schedule);
  source.addEventListener("tx", schedule);
  source.addEventListener("lagged", schedule);
  source.addEventListener("error", function () { say("Live: reconnecting…", false); });
})();
