/* gridwatch operator map: place names from the hub's own regions and roads, sized by zoom (no internet tiles). */
(function () {
  "use strict";
  var gw = window.gw;
  // font size (px) at the first zoom a kind is named at (api/routers/places.py LABEL_ZOOMS), and
  // that first zoom; each zoom closer adds a pixel, up to four
  var STYLE = { county: [15, 8], township: [14, 10], village: [12, 13], natural_village: [11, 15], road: [11, 14] };
  var MIN_ZOOM = 8;

  function fontPx(kind, z) {
    var s = STYLE[kind] || STYLE.village;
    return s[0] + Math.max(0, Math.min(4, z - s[1]));
  }
  function textWidth(name, px) { // CJK glyphs are about 1 em wide, Latin about 0.6 em
    var w = 0;
    for (var i = 0; i < name.length; i++) w += name.charCodeAt(i) > 0x2e80 ? px : 0.6 * px;
    return w + 6;
  }
  function overlaps(a, list) {
    for (var i = 0; i < list.length; i++) {
      var b = list[i];
      if (a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]) return true;
    }
    return false;
  }

  /* the labels layer: asks the hub for the names in view after each move and draws those that
     fit, most important first (the hub's order), dropping any that would overlap one drawn */
  gw.placeLabels = function (map) {
    if (!map.getPane("gwLabels")) {
      var pane = map.createPane("gwLabels");
      pane.style.zIndex = 450;
      pane.style.pointerEvents = "none";
    }
    var layer = L.layerGroup();
    var generation = 0;
    function draw(features, z) {
      layer.clearLayers();
      var placed = [];
      var counts = {};
      features.forEach(function (f) {
        var p = f.properties, c = f.geometry && f.geometry.coordinates;
        if (!c || !p.name) return;
        var ll = L.latLng(c[1], c[0]);
        var pt = map.latLngToContainerPoint(ll);
        var px = fontPx(p.kind, z);
        var w = textWidth(p.name, px), h = px * 1.3;
        var turn = p.kind === "road" && typeof p.angle === "number" ? p.angle : 0;
        var rad = turn * Math.PI / 180;
        var bw = Math.abs(w * Math.cos(rad)) + Math.abs(h * Math.sin(rad));
        var bh = Math.abs(w * Math.sin(rad)) + Math.abs(h * Math.cos(rad));
        var box = [pt.x - bw / 2, pt.y - bh / 2, pt.x + bw / 2, pt.y + bh / 2];
        if (overlaps(box, placed)) return;
        placed.push(box);
        counts[p.kind] = (counts[p.kind] || 0) + 1;
        // names come from imports: text nodes only (gw-safe.js)
        var span = gw.el("span", { class: "gw-place gw-place-" + p.kind, "data-kind": p.kind, text: p.name });
        span.style.fontSize = px + "px";
        span.style.transform = "translate(-50%, -50%)" + (turn ? " rotate(" + turn + "deg)" : "");
        L.marker(ll, {
          icon: L.divIcon({ className: "gw-place-icon", html: span, iconSize: null }),
          pane: "gwLabels", interactive: false, keyboard: false,
        }).addTo(layer);
      });
      var el = map.getContainer();
      el.setAttribute("data-labels", String(placed.length));
      el.setAttribute("data-label-kinds", Object.keys(counts).sort().join(","));
      el.setAttribute("data-label-zoom", String(z)); // which view the names drawn are for (tests)
    }
    function refresh() {
      var g = ++generation;
      var z = map.getZoom();
      if (z < MIN_ZOOM || !map.hasLayer(layer)) { layer.clearLayers(); return; }
      var b = map.getBounds();
      var box = [Math.max(-180, b.getWest()), Math.max(-90, b.getSouth()), Math.min(180, b.getEast()), Math.min(90, b.getNorth())];
      gw.api("/geo/labels?zoom=" + z + "&bbox=" + box.map(function (v) { return v.toFixed(5); }).join(",")).then(function (fc) {
        if (g === generation) draw(fc.features, z);
      }).catch(function () { if (g === generation) layer.clearLayers(); });
    }
    var soon = gw.debounce(refresh, 250);
    map.on("moveend", soon);
    layer.on("add", soon);
    layer.addTo(map);
    return { layer: layer, refresh: refresh };
  };
})();
