// Live figures for wahaq's console: fetches the page's JSON fragment every
// few seconds and writes it into the elements that name a key (data-f for
// text, data-p for progress bars). Without JavaScript the page refreshes
// itself (a meta refresh in <noscript>); if fetching fails, a Reload link
// is shown instead.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-live");
  if (!url || !window.fetch) { return; }
  var status = document.getElementById("live-status");
  var every = parseInt(body.getAttribute("data-every"), 10) || 2000;
  var fails = 0, sawRunning = false;

  function each(attr, key, fn) {
    var els = document.querySelectorAll("[" + attr + "]");
    for (var i = 0; i < els.length; i++) {
      if (els[i].getAttribute(attr) === key) { fn(els[i]); }
    }
  }

  function apply(d) {
    Object.keys(d.f || {}).forEach(function (k) {
      each("data-f", k, function (el) { el.textContent = d.f[k]; });
    });
    Object.keys(d.p || {}).forEach(function (k) {
      each("data-p", k, function (el) { el.value = d.p[k]; el.textContent = d.p[k] + "%"; });
    });
  }

  function say(text, reload) {
    status.textContent = text + " ";
    if (reload) {
      var a = document.createElement("a");
      a.href = "";
      a.textContent = "Reload";
      status.appendChild(a);
    }
  }

  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (d) {
        fails = 0;
        apply(d);
        say("Live · updated " + new Date().toLocaleTimeString() + ".", false);
        if (d.done) {
          // Finished while watched: reload once for the final page (its
          // dead letters, its result). Finished already: just stop.
          if (sawRunning) { window.location.reload(); return; }
          say("Final figures.", false);
          return;
        }
        sawRunning = true;
        window.setTimeout(tick, every);
      })
      .catch(function () {
        fails++;
        if (fails >= 3) { say("Live updates stopped.", true); return; }
        window.setTimeout(tick, every * 2);
      });
  }
  say("Live.", false);
  window.setTimeout(tick, every);
})();
