/* gridwatch operator live map: tiles of devices and places, alarms from the stream, acting on them. */
(function () {
  "use strict";
  var gw = window.gw;

  gw.views.live = function (map, cfg) {
    var region = cfg.region || null;
    map.createPane("gwContext").style.zIndex = 350;
    map.createPane("gwAlarms").style.zIndex = 640;
    map.createPane("gwHighlight").style.zIndex = 630;
    if (!cfg.tileUrl) map.getContainer().style.background = "#eef1f4";

    // ---------------------------------------------------------------- context and devices (vector tiles)
    var context = gw.tiles("context", {
      regions: function (p) {
        var w = { 1: 3, 2: 2.5, 3: 2.2, 4: 1.4, 5: 0.8 }[p.level] || 1;
        return { weight: w, color: p.level <= 3 ? "#33445c" : "#6d7d92", opacity: 0.9, fill: false, dashArray: p.level >= 5 ? "3 3" : null };
      },
      grids: { weight: 0.8, color: "#7c5cb8", opacity: 0.7, fill: false, dashArray: "2 4" },
      key_sites: { weight: 1, color: "#2b6cb0", fillColor: "#2b6cb0", fillOpacity: 0.12, fill: true, radius: 4 },
      roads: function (p) { return { weight: p.class === "primary" || p.class === "trunk" ? 2.5 : 1.2, color: "#c9b98f", opacity: 0.9, fill: false }; },
      railways: { weight: 2, color: "#555", dashArray: "6 3", fill: false },
      geofences: function (p) {
        var keepOut = p.kind === "keep_out";
        return { weight: 2, color: keepOut ? "#c0392b" : "#1f6fb2", fill: true, fillOpacity: 0.08, fillColor: keepOut ? "#c0392b" : "#1f6fb2", dashArray: keepOut ? null : "6 4" };
      },
    }, { pane: "gwContext" });

    function deviceStyle(p, z) {
      if (p.cluster) {
        var n = p.count || 1;
        var share = (p.online || 0) / n;
        var color = (p.unknown || 0) / n > 0.5 ? gw.colors.unknown : share >= 0.9 ? gw.colors.online : share >= 0.5 ? "#e39b1a" : gw.colors.offline;
        return { radius: Math.min(15, 4 + 2 * Math.log2(n + 1)), fill: true, fillColor: color, fillOpacity: 0.75, color: "#fff", weight: 1.5 };
      }
      return pointStyle(p.status);
    }
    function pointStyle(status) {
      return { radius: 5, fill: true, fillColor: gw.colors[status] || gw.colors.unknown, fillOpacity: 0.95, color: "#fff", weight: 1.5 };
    }
    function coverageStyle(status) {
      var c = gw.colors[status] || gw.colors.unknown;
      return { fill: true, fillColor: c, fillOpacity: 0.18, color: c, weight: 0.8, opacity: 0.7 };
    }
    var devices = gw.tiles("devices", {
      devices: deviceStyle,
      coverage: function (p) { return coverageStyle(p.status); },
    }, {
      interactive: true,
      getFeatureId: function (f) {
        var p = f.properties;
        if (p.id === undefined || p.id === null || p.id === "") return undefined;
        return p.cluster === undefined ? "cov:" + p.id : p.id;
      },
    });
    devices.on("click", function (e) {
      var p = e.layer.properties || {};
      if (p.cluster && p.count > 1) { map.setView(e.latlng, Math.min(map.getZoom() + 2, 18)); return; }
      if (p.id) { showDevice(p.id, e.latlng); gw.cameraPanel(p.id); }
    });
    context.addTo(map);
    devices.addTo(map);
    var labels = gw.placeLabels(map);
    var statusOverride = {};
    function setStatus(id, status) {
      statusOverride[id] = status;
      devices.setFeatureStyle(id, pointStyle(status));
      devices.setFeatureStyle("cov:" + id, coverageStyle(status));
    }

    function showDevice(id, latlng) {
      gw.api("/devices/" + id + "?with_fov=false").then(function (d) {
        var rows = [
          ["id", d.id], [gw.t("kind"), d.kind + (d.sub_kind ? " / " + d.sub_kind : "")],
          [gw.t("status"), gw.t(statusOverride[d.id] || d.status)], [gw.t("last_seen"), gw.time(d.last_seen)],
          [gw.t("region"), d.region_code || ""],
        ];
        // device names come from installers and devices: text nodes only, never HTML (gw-safe.js)
        var box = gw.el("div", { class: "gw-device-popup" }, [gw.el("b", { text: d.name || d.id }), gw.el("table", { class: "gw-table" }, rows.map(function (r) {
          return gw.el("tr", {}, [gw.el("th", { text: r[0] }), gw.el("td", { text: String(r[1]) })]);
        }))]);
        if (d.hfov_deg !== null && d.hfov_deg !== undefined) {
          box.querySelector("table").appendChild(gw.el("tr", {}, [gw.el("th", { text: gw.t("optics") }), gw.el("td", {
            text: Math.round(d.hfov_deg) + "° · " + (d.range_m ? Math.round(d.range_m) + " m" : "–") + (d.heading_deg !== null && d.heading_deg !== undefined ? " · " + Math.round(d.heading_deg) + "°N" : ""),
          })]));
          box.appendChild(gw.snapshotBox(d.id));
        }
        L.popup({ maxWidth: 340 }).setLatLng(latlng).setContent(box).openOn(map);
      }).catch(function (e) { gw.toast(gw.errorText(e)); });
    }
    // ---------------------------------------------------------------- counts in view
    var nTotal = document.getElementById("gw-n-total");
    function refreshCounts() {
      var b = map.getBounds();
      var q = "?bbox=" + [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); }).join(",");
      if (region) q += "&region=" + region;
      gw.api("/devices/summary" + q).then(function (s) {
        nTotal.textContent = s.total;
        document.getElementById("gw-n-online").textContent = s.online;
        document.getElementById("gw-n-offline").textContent = s.offline;
        document.getElementById("gw-n-unknown").textContent = s.unknown;
        nTotal.setAttribute("data-total", s.total);
      }).catch(function () {});
    }
    var refreshCountsSoon = gw.debounce(refreshCounts, 400);
    map.on("moveend", refreshCountsSoon);
    refreshCounts();
    var redrawDevices = gw.debounce(function () { devices.redraw(); refreshCounts(); }, 5000);

    // ---------------------------------------------------------------- patrol units and trackers
    var units = L.layerGroup().addTo(map);
    var unitMarkers = {};
    var UNIT_ICONS = { patrol_car: "P", livestock_collar: "L", mobile: "M" };
    function placeUnit(id, lat, lon, kind, status) {
      var m = unitMarkers[id];
      if (!m) {
        var icon = L.divIcon({ className: "gw-unit-icon " + (UNIT_ICONS[kind] ? kind : "mobile"), html: UNIT_ICONS[kind] || "M", iconSize: [16, 16] });
        m = unitMarkers[id] = L.marker([lat, lon], { icon: icon, title: id, keyboard: false }).addTo(units);
        m.on("click", function () { showDevice(id, m.getLatLng()); });
      } else {
        m.setLatLng([lat, lon]);
      }
      if (status) m.setOpacity(status === "offline" ? 0.45 : 1);
    }
    function loadUnits() {
      var q = "/geo/devices?moving=true&limit=1000" + (region ? "&region=" + region : "");
      gw.api(q).then(function (fc) {
        fc.features.forEach(function (f) {
          var c = f.geometry.coordinates;
          placeUnit(f.id, c[1], c[0], f.properties.sub_kind || f.properties.kind, f.properties.status);
        });
      }).catch(function () {});
    }

    // ---------------------------------------------------------------- alarms (the queue is gw-alarms.js)
    var alarmLayer = L.layerGroup().addTo(map);
    var highlight = L.layerGroup().addTo(map);
    var OPEN = { new: 1, acknowledged: 1, dispatched: 1 };
    var markers = {};
    // Only the MAX_PULSING most urgent open alarms pulse (most severe, then newest): every pulsing
    // marker costs a style recalculation and a repaint of the map's SVG on each frame, and under a
    // burst of hundreds the page spent its frames animating (bench/RESULTS.md). The others keep
    // their severity's colour, steady.
    var MAX_PULSING = 20;
    var pulsing = []; // [id, severity], oldest first
    function pulseOn(a) {
      var i = pulsing.findIndex(function (p) { return p[0] === a.id; });
      if (!OPEN[a.state]) { if (i >= 0) pulsing.splice(i, 1); return; }
      if (i >= 0) return;
      pulsing.push([a.id, a.severity]);
      if (pulsing.length <= MAX_PULSING) return;
      var drop = 0; // the least severe, oldest first
      pulsing.forEach(function (p, k) { if (p[1] > pulsing[drop][1]) drop = k; });
      var out = pulsing.splice(drop, 1)[0];
      if (out[0] !== a.id && markers[out[0]] && markers[out[0]]._path) markers[out[0]]._path.classList.remove("gw-pulse");
    }
    function markerStyle(a) {
      var pulse = pulsing.some(function (p) { return p[0] === a.id; });
      return { radius: 10, color: gw.sevColors[a.severity] || "#d33a2c", weight: 3, fill: true, fillColor: "#fff", fillOpacity: 0.9, pane: "gwAlarms", className: "gw-alarm-marker sev-" + a.severity + (OPEN[a.state] ? "" : " closed") + (pulse ? " gw-pulse" : "") };
    }
    function showMarker(entry) {
      var a = entry.data;
      if (!has(a.lat) || !has(a.lon)) return;
      pulseOn(a);
      var m = markers[a.id];
      if (!m) {
        m = markers[a.id] = L.circleMarker([a.lat, a.lon], markerStyle(a)).addTo(alarmLayer);
        m.on("click", function () { queue.select(a.id); });
      } else {
        m.setStyle(markerStyle(a));
        if (m._path) m._path.setAttribute("class", "leaflet-interactive " + markerStyle(a).className);
      }
    }
    function hideMarker(entry) {
      var m = markers[entry.data.id];
      var i = pulsing.findIndex(function (p) { return p[0] === entry.data.id; });
      if (i >= 0) pulsing.splice(i, 1);
      if (m) { alarmLayer.removeLayer(m); delete markers[entry.data.id]; }
    }
    function has(v) { return v !== null && v !== undefined; }
    function cameraList(d) {
      var box = gw.el("div", { class: "gw-a-cams" });
      var covering = d.cameras.filter(function (c) { return c.relation === "covers"; });
      var nearest = d.cameras.filter(function (c) { return c.relation !== "covers"; });
      if (!d.cameras.length) box.appendChild(gw.el("div", { class: "gw-sub", text: gw.t("no_cameras") }));
      function line(c) {
        var bits = [c.name || c.device_id];
        if (has(c.distance_m)) bits.push(Math.round(c.distance_m) + " m");
        if (c.relation !== "covers" && c.faces !== null && c.faces !== undefined) bits.push(gw.t(c.faces ? "faces_spot" : "faces_away"));
        if (c.preset) bits.push(gw.t("ptz_preset").replace("{n}", c.preset.number) + (has(c.preset.heading_deg) ? " (" + Math.round(c.preset.heading_deg) + "°N)" : ""));
        if (c.status) bits.push(gw.t(c.status));
        var row = gw.el("div", { class: "gw-a-cam " + (c.relation === "covers" ? "covers" : "nearest"), "data-camera-id": c.device_id, "data-relation": c.relation, role: "button", tabindex: "0", text: "▸ " + bits.join(" · ") });
        if (c.preset) row.setAttribute("data-preset", String(c.preset.number));
        row.addEventListener("click", function (ev) { ev.stopPropagation(); openCamera(c.device_id, has(c.lat) ? L.latLng(c.lat, c.lon) : null); });
        return row;
      }
      if (covering.length) {
        box.appendChild(gw.el("div", { class: "gw-sub", text: gw.t("cameras_covering") }));
        covering.forEach(function (c) { box.appendChild(line(c)); });
      } else if (d.cameras.length) {
        box.appendChild(gw.el("div", { class: "gw-sub gw-no-cover", text: gw.t("no_covering_camera") }));
      }
      if (nearest.length) {
        box.appendChild(gw.el("div", { class: "gw-sub", text: gw.t("cameras_nearest") }));
        nearest.forEach(function (c) { box.appendChild(line(c)); });
      }
      return box;
    }
    function highlightAlarm(d) {
      highlight.clearLayers();
      var bounds = [];
      if (has(d.lat)) bounds.push([d.lat, d.lon]);
      d.cameras.forEach(function (c) {
        var covers = c.relation === "covers";
        if (c.fov) {
          L.geoJSON(c.fov, { pane: "gwHighlight", style: { color: covers ? "#ff7b00" : "#7a8699", weight: covers ? 3 : 1.5, dashArray: covers ? null : "4 4", fillColor: covers ? "#ffb347" : "#c5ccd6", fillOpacity: covers ? 0.35 : 0.15, className: covers ? "gw-cover-highlight" : "gw-near-highlight" } }).addTo(highlight);
        }
        if (has(c.lat)) {
          var m = L.circleMarker([c.lat, c.lon], { pane: "gwHighlight", radius: 7, color: covers ? "#ff7b00" : "#7a8699", weight: 3, fillColor: "#fff", fillOpacity: 1, className: covers ? "gw-cover-camera" : "gw-near-camera" }).addTo(highlight);
          m.on("click", function () { openCamera(c.device_id, m.getLatLng()); });
          bounds.push([c.lat, c.lon]);
        }
      });
      if (bounds.length === 1) map.setView(bounds[0], Math.max(map.getZoom(), 16));
      else if (bounds.length > 1) map.fitBounds(bounds, { padding: [60, 60], maxZoom: 18 });
    }
    function openCamera(id, latlng) {
      if (gw.cameraPanel) gw.cameraPanel(id, latlng);
      else showDevice(id, latlng || map.getCenter());
    }
    var queue = gw.alarmQueue(cfg, {
      shown: showMarker,
      hidden: hideMarker,
      selected: highlightAlarm,
      cameras: cameraList,
    });
    var history = gw.alarmHistory(cfg);
    var historyLoaded = false;
    var deviceList = gw.deviceList(map, cfg);
    var kpi = gw.kpiStrip(map, cfg);
    gw.sideTabs({
      history: function () { if (!historyLoaded) { historyLoaded = true; history.load(true); } },
      devices: function () { deviceList.show(); },
    });
    gw.fillFilterOptions(cfg);
    // ---------------------------------------------------------------- stream
    var conn = document.getElementById("gw-conn");
    var connText = document.getElementById("gw-conn-text");
    var loaded = false;
    // alarms reach the list once per frame, however many came since the last one (a burst of a
    // hundred a second is a few dozen renders, not a hundred); sounds and notifications go at once
    var alarmEvents = gw.frameBatch(function (events) {
      queue.batch(events);
      kpi.refresh();
    });
    gw.stream(region, function (kind, ev) {
      var p = ev.payload || {};
      if (kind === "alarm.new") {
        gw.alert(p);
        alarmEvents(["new", p]);
      } else if (kind === "alarm.updated") {
        gw.alertHandled(p);
        alarmEvents(["updated", p]);
      } else if (kind === "device.status") {
        setStatus(p.device_id, p.status);
        if (unitMarkers[p.device_id]) unitMarkers[p.device_id].setOpacity(p.status === "offline" ? 0.45 : 1);
        refreshCountsSoon();
      } else if (kind === "device.position") {
        placeUnit(p.device_id, p.lat, p.lon, null, null);
      } else if (kind === "geofence.enter" || kind === "geofence.exit") {
        gw.toast((p.device_id || "") + " " + gw.t(kind === "geofence.enter" ? "geofence_enter" : "geofence_exit") + " " + (p.geofence_name || p.geofence_id || ""));
      } else if (kind.indexOf("x.device.") === 0) {
        redrawDevices();
      }
    }, function (state) {
      conn.className = "gw-conn " + (state === "live" ? "live" : "down");
      connText.textContent = gw.t(state === "live" ? "stream_live" : "stream_down");
      conn.setAttribute("data-state", state);
      if (state === "live" && !loaded) {
        loaded = true;
        queue.start();
        loadUnits();
      }
    });

    // ---------------------------------------------------------------- layer control
    var control = null;
    function layerControl() {
      if (control) control.remove();
      var overlays = {};
      overlays[gw.t("layer_context")] = context;
      overlays[gw.t("layer_places")] = labels.layer;
      overlays[gw.t("layer_devices")] = devices;
      overlays[gw.t("layer_alarms")] = alarmLayer;
      overlays[gw.t("layer_units")] = units;
      overlays[gw.t("layer_highlight")] = highlight;
      control = L.control.layers(null, overlays, { collapsed: true, position: "topleft" }).addTo(map);
    }
    layerControl();
    gw.onLang.push(function () { layerControl(); });
    gw.live = { map: map, labels: labels, pulsing: function () { return pulsing.map(function (p) { return p[0]; }); }, queue: queue, deviceList: deviceList, kpi: kpi, markers: markers, devices: devices, select: queue.select, openCamera: openCamera };
  };
})();
