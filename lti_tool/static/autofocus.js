// Chromium ignores `autofocus` inside a cross-origin iframe (the LMS page), so
// after a keyboard action (e.g. "Move up") put focus back where the page asks.
(function () {
  var el = document.querySelector("[autofocus]");
  if (el) { el.focus(); }
})();
