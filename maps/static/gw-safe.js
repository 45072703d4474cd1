/* gridwatch pages: the one way to show untrusted text (device names, kinds, details, rule names). */
(function () {
  "use strict";
  var gw = (window.gw = window.gw || {});
  // Prefer textContent (gw.el(tag, {text: ...})) or gw.textBox for Leaflet popups and tooltips;
  // whenever a string must become HTML, every value from the API goes through gw.esc first.
  var ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;" };
  gw.esc = function (value) {
    if (value === null || value === undefined) return "";
    return String(value).replace(/[&<>"'`]/g, function (c) { return ENTITIES[c]; });
  };
  // Leaflet's bindPopup/bindTooltip/setContent treat a string as HTML: give them this element instead.
  gw.textBox = function (text, className) {
    var box = document.createElement("div");
    if (className) box.className = className;
    box.textContent = text === null || text === undefined ? "" : String(text);
    return box;
  };
})();
