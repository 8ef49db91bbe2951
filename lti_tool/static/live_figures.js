// Scores on their way to the LMS: the sending panel's figures are read again
// every few seconds and changed in place until nothing is waiting. Reloading
// the whole page instead would move keyboard focus and interrupt a screen
// reader every time; the "waiting" figure is a polite live region.
(function () {
  var panel = document.querySelector("[data-refresh-url]");
  if (!panel || !window.fetch || !window.DOMParser) { return; }
  var url = panel.getAttribute("data-refresh-url");
  var every = 4000;
  function waiting(el) { return el.getAttribute("data-pending") !== "0"; }
  function update() {
    if (document.hidden) { setTimeout(update, every); return; }
    fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    }).then(function (text) {
      var fresh = new DOMParser().parseFromString(text, "text/html")
        .querySelector("[data-refresh-url]");
      if (!fresh) { return; }
      panel.querySelectorAll("[data-live]").forEach(function (el) {
        var now = fresh.querySelector("#" + el.id);
        if (now && now.innerHTML !== el.innerHTML) { el.innerHTML = now.innerHTML; }
      });
      panel.setAttribute("data-pending", fresh.getAttribute("data-pending"));
      if (waiting(fresh)) { setTimeout(update, every); }
    }).catch(function () { /* the figures stay as they are; "Check again" still works */ });
  }
  if (waiting(panel)) { setTimeout(update, every); }
})();
