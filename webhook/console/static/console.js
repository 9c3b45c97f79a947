// Live parts of console pages: an element with data-refresh="URL" data-every="SECONDS" swaps in the
// HTML fragment at URL every few seconds (same origin, the session cookie goes along). Pauses while
// the tab is hidden; a failed fetch keeps the last content and says so.
(function () {
  "use strict";
  function refresh(el) {
    if (document.hidden) return;
    fetch(el.dataset.refresh, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        if (!r.ok) throw new Error(String(r.status));
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        el.innerHTML = html;
        el.removeAttribute("data-stale");
        el.dataset.updated = String(Date.now());
      })
      .catch(function () { el.setAttribute("data-stale", "true"); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(function (el) {
      var every = Math.max(Number(el.dataset.every) || 5, 1) * 1000;
      window.setInterval(function () { refresh(el); }, every);
    });
  });
})();
