// healthgate status page: re-renders <main> from the server's own HTML on
// each event of /api/events (a status or verdict change) and every 5 s
// (runs that change nothing are not events, but the bars show them); only
// the 5 s refresh when the stream is not there. No external asset, and
// nothing parsed but this server's own page.
"use strict";
(function () {
  const live = document.getElementById("live");
  let busy = false;
  let again = false;

  // Times as "3m ago" beside the UTC the server wrote.
  function ages() {
    const now = Date.now();
    for (const t of document.querySelectorAll("td.since time")) {
      const at = Date.parse(t.getAttribute("datetime"));
      if (isNaN(at)) continue;
      const s = Math.max(0, Math.round((now - at) / 1000));
      const ago = s < 90 ? s + "s" : s < 5400 ? Math.round(s / 60) + "m"
        : s < 129600 ? Math.round(s / 3600) + "h" : Math.round(s / 86400) + "d";
      t.textContent = ago + " ago";
      t.title = t.getAttribute("datetime");
    }
  }

  // One refresh at a time; changes during one ask for one more.
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch("/", { cache: "no-store", credentials: "same-origin" });
      if (response.ok) {
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = doc.querySelector("main");
        if (fresh) {
          document.querySelector("main").replaceWith(document.adoptNode(fresh));
          ages();
        }
      }
    } catch (e) {
      live.textContent = "offline";
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }

  function polling() {
    live.textContent = "polling";
    live.className = "live polling";
  }

  if (window.EventSource) {
    const events = new EventSource("/api/events");
    events.onopen = function () {
      live.textContent = "live";
      live.className = "live on";
      refresh();
    };
    for (const type of ["check", "verdict", "drain", "maintenance", "reload", "gap"]) {
      events.addEventListener(type, refresh);
    }
    events.onerror = polling;
  } else {
    polling();
  }
  ages();
  setInterval(refresh, 5000);
  setInterval(ages, 10000);
})();
