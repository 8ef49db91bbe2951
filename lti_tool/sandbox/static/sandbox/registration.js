// Dynamic registration: the tool posts {subject: "org.imsglobal.lti.close"} to this page
// when it is done (LTI DR 1.0); the platform then closes the frame and reloads its tool list.
(function () {
  "use strict";
  var status = document.getElementById("registration-status");
  var frame = document.getElementById("tool-frame");
  if (!status || !frame) {
    return;
  }
  var toolOrigin = status.getAttribute("data-tool-origin");
  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow || event.origin !== toolOrigin) {
      return;
    }
    var data = event.data;
    if (data && typeof data === "object" && data.subject === "org.imsglobal.lti.close") {
      status.textContent = "The tool finished its registration. Reloading the tool list…";
      frame.remove();
      window.setTimeout(function () { window.location.assign(window.location.pathname); }, 800);
    }
  });
})();
