// Submits the hidden form at once (OIDC login initiation, id_token form post, error post-back).
// The visible Continue button covers browsers without JavaScript.
(function () {
  "use strict";
  var form = document.getElementById("autopost");
  if (form) {
    form.submit();
  }
})();
