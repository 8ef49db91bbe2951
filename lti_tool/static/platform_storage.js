/* LTI platform storage (1EdTech client-side postMessage storage): keeps the
   login binding in the LMS's own frame when the browser blocks our cookies.
   "put" stores the secret at login, then continues to the LMS; "get" reads it
   back at launch and posts the launch again with it. */
(function () {
  "use strict";
  var el = document.getElementById("pw-storage");
  if (!el) { return; }
  var mode = el.getAttribute("data-mode");
  var target = el.getAttribute("data-target");
  var origin = el.getAttribute("data-origin") || "*";
  var key = el.getAttribute("data-key");
  var messageId = "pw-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  var finished = false;

  function platformFrame() {
    try {
      if (target === "_parent") { return window.parent; }
      return window.parent && window.parent !== window ? window.parent.frames[target] : null;
    } catch (e) { return null; }
  }

  function send(message) {
    var frame = platformFrame();
    if (!frame) { return false; }
    try { frame.postMessage(message, origin); return true; } catch (e) { return false; }
  }

  function finish(value) {
    if (finished) { return; }
    finished = true;
    if (mode === "put") {
      window.location.replace(el.getAttribute("data-next"));
      return;
    }
    var form = document.getElementById("pw-launch-form");
    if (value) {
      document.getElementById("pw-storage-secret").value = value;
      // The secret is single-use: remove it from the LMS's storage.
      send({ subject: "lti.put_data", message_id: messageId + "-del", key: key, value: "" });
    }
    form.submit();
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (typeof data === "string") {
      try { data = JSON.parse(data); } catch (e) { return; }
    }
    if (!data || data.message_id !== messageId) { return; }
    if (origin !== "*" && event.origin !== origin) { return; }
    if (data.subject === "lti.put_data.response" || data.subject === "lti.get_data.response") {
      finish(data.error ? null : data.value);
    }
  });

  var message = { subject: mode === "put" ? "lti.put_data" : "lti.get_data",
                  message_id: messageId, key: key };
  if (mode === "put") { message.value = el.getAttribute("data-value"); }
  if (!send(message)) { finish(null); return; }
  // An LMS that never answers must not leave the person on a blank page.
  window.setTimeout(function () { finish(null); }, 3000);
}());
