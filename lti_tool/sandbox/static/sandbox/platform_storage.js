// Canvas-style LTI client-side platform storage (platforms.md A11).
// Loaded in the hidden `post_message_forwarding` frame and in the course page that holds the
// tool frame (Canvas accepts both targets). Data lives in this origin's localStorage under
// "lti|platform_storage|<sender origin>|<key>", so each tool origin has its own space,
// limited to 500 keys and 4096 characters (keys + values) like Canvas.
(function () {
  "use strict";
  var KEY_LIMIT = 500;
  var CHAR_LIMIT = 4096;
  var PREFIX = "lti|platform_storage|";
  var STORAGE_SUBJECTS = ["lti.put_data", "lti.get_data"];
  var SUPPORTED = ["lti.capabilities", "lti.put_data", "lti.get_data", "lti.frameResize"];
  var isForwardingFrame = window.name === "post_message_forwarding";

  function originPrefix(origin) {
    return PREFIX + origin + "|";
  }

  function usage(origin) {
    var prefix = originPrefix(origin);
    var keys = 0;
    var chars = 0;
    for (var i = 0; i < window.localStorage.length; i++) {
      var k = window.localStorage.key(i);
      if (k && k.indexOf(prefix) === 0) {
        keys += 1;
        chars += k.length - prefix.length + (window.localStorage.getItem(k) || "").length;
      }
    }
    return { keys: keys, chars: chars };
  }

  function respond(event, subject, messageId, contents) {
    var message = { subject: subject + ".response" };
    if (messageId) {
      message.message_id = messageId;
    }
    for (var name in contents) {
      if (Object.prototype.hasOwnProperty.call(contents, name)) {
        message[name] = contents[name];
      }
    }
    if (event.source && typeof event.source.postMessage === "function") {
      // Reply to the sender's window, readable by the sender's origin only.
      event.source.postMessage(message, event.origin === "null" ? "*" : event.origin);
    }
  }

  function error(event, subject, messageId, code, text) {
    var err = { code: code };
    if (text) {
      err.message = text;
    }
    respond(event, subject, messageId, { error: err });
  }

  function capabilities(event, subject, messageId) {
    var supported = [];
    SUPPORTED.forEach(function (s) {
      supported.push(STORAGE_SUBJECTS.indexOf(s) >= 0 ? { subject: s, frame: "post_message_forwarding" } : { subject: s });
    });
    STORAGE_SUBJECTS.forEach(function (s) {
      supported.push({ subject: "org.imsglobal." + s, frame: "post_message_forwarding" });
    });
    supported.push({ subject: "org.imsglobal.lti.capabilities" });
    respond(event, subject, messageId, { supported_messages: supported });
  }

  function putData(event, subject, message) {
    var key = message.key;
    var messageId = message.message_id;
    if (!key) {
      return error(event, subject, messageId, "bad_request", "Missing required 'key' field");
    }
    if (!messageId) {
      return error(event, subject, messageId, "bad_request", "Missing required 'message_id' field");
    }
    var storageKey = originPrefix(event.origin) + key;
    var value = message.value;
    if (value === null || value === undefined || value === "") {
      window.localStorage.removeItem(storageKey);
      return respond(event, subject, messageId, { key: key });
    }
    value = String(value);
    var used = usage(event.origin);
    var old = window.localStorage.getItem(storageKey);
    if (old === null && used.keys >= KEY_LIMIT) {
      return error(event, subject, messageId, "storage_exhaustion", "Reached key limit for tool");
    }
    var oldChars = old === null ? 0 : String(key).length + old.length;
    if (used.chars - oldChars + String(key).length + value.length > CHAR_LIMIT) {
      return error(event, subject, messageId, "storage_exhaustion", "Reached byte limit for tool");
    }
    try {
      window.localStorage.setItem(storageKey, value);
    } catch (e) {
      return error(event, subject, messageId, "storage_exhaustion", "Browser storage is full");
    }
    respond(event, subject, messageId, { key: key, value: value });
  }

  function getData(event, subject, message) {
    if (!message.key) {
      return error(event, subject, message.message_id, "bad_request", "Missing required 'key' field");
    }
    if (!message.message_id) {
      return error(event, subject, message.message_id, "bad_request", "Missing required 'message_id' field");
    }
    var value = window.localStorage.getItem(originPrefix(event.origin) + message.key);
    respond(event, subject, message.message_id, { key: message.key, value: value });
  }

  function frameResize(event, message) {
    var frames = document.querySelectorAll("iframe.tool-frame");
    for (var i = 0; i < frames.length; i++) {
      if (frames[i].contentWindow === event.source) {
        var h = message.height;
        var px = typeof h === "number" ? h : parseInt(String(h), 10);
        if (px > 0 && px < 20000) {
          frames[i].style.height = px + "px";
        }
      }
    }
  }

  window.addEventListener("message", function (event) {
    var message = event.data;
    if (typeof message === "string") {
      try {
        message = JSON.parse(message);
      } catch (e) {
        return;
      }
    }
    if (!message || typeof message !== "object" || typeof message.subject !== "string") {
      return;
    }
    if (event.origin === window.location.origin) {
      return; // our own frames; nothing to answer
    }
    var subject = message.subject;
    var bare = subject.indexOf("org.imsglobal.") === 0 ? subject.slice("org.imsglobal.".length) : subject;
    if (bare.slice(-9) === ".response" || bare.indexOf("lti.") !== 0) {
      return;
    }
    switch (bare) {
      case "lti.capabilities":
        return capabilities(event, subject, message.message_id);
      case "lti.put_data":
        return putData(event, subject, message);
      case "lti.get_data":
        return getData(event, subject, message);
      case "lti.frameResize":
        if (!isForwardingFrame) {
          frameResize(event, message);
        }
        return;
      default:
        return error(event, subject, message.message_id, "unsupported_subject", "Not supported by the sandbox: " + subject);
    }
  });
})();
