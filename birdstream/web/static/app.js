// Live updates and reviews for the station's page; everything comes from this daemon.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var timer = null;

  // Re-render the live sections from the server's own HTML: one source of truth for the counts.
  function refresh() {
    timer = null;
    fetch(location.href, {cache: "no-store"}).then(function (r) { return r.text(); }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html");
      ["streams", "counts", "grid", "cards"].forEach(function (id) {
        var now = document.getElementById(id), next = fresh.getElementById(id);
        if (now && next) now.replaceWith(next);
      });
      document.body.dataset.refreshed = String(Date.now());
    });
  }
  function soon() { if (!timer) timer = setTimeout(refresh, 400); }

  if (live.dataset.live === "yes" && window.EventSource) {
    var source = new EventSource("/api/events");
    source.onmessage = soon;
    source.addEventListener("lagged", soon);
  }

  live.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-verdict]");
    if (!button) return;
    var card = button.closest(".card"), body = {verdict: button.dataset.verdict};
    if (body.verdict === "relabel") {
      body.species = card.querySelector("input").value.trim();
      if (!body.species) return;
    }
    fetch("/api/sightings/" + encodeURIComponent(card.dataset.id) + "/review", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (answer) {
        if (!r.ok) { alert(answer.error || ("review refused: " + r.status)); return; }
        refresh();
      });
    });
  });
})();
