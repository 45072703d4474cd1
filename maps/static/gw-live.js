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
      if (p.id) showDevice(p.id, e.latlng);
    });
    context.addTo(map);
    devices.addTo(map);
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
        L.popup().setLatLng(latlng).setContent(box).openOn(map);
      }).catch(function (e) { gw.toast(e.message); });
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

    // ---------------------------------------------------------------- alarms
    var alarmLayer = L.layerGroup().addTo(map);
    var highlight = L.layerGroup().addTo(map);
    var list = document.getElementById("gw-alarms");
    var alarms = {};
    var selected = null;
    var OPEN = { new: 1, acknowledged: 1, dispatched: 1 };
    var NEXT = {
      new: [["acknowledge", "acknowledge"]],
      acknowledged: [["dispatch", "dispatch"], ["resolve", "resolve"], ["false-alarm", "false_alarm"]],
      dispatched: [["resolve", "resolve"], ["false-alarm", "false_alarm"]],
    };
    function countAlarms() {
      var n = Object.keys(alarms).filter(function (k) { return OPEN[alarms[k].data.state]; }).length;
      document.getElementById("gw-n-alarms").textContent = n;
      document.getElementById("gw-no-alarms").classList.toggle("gw-hidden", n > 0);
    }
    function renderItem(entry) {
      var a = entry.data;
      var li = entry.li;
      li.className = "gw-alarm sev-" + a.severity + (selected === a.id ? " selected" : "") + (entry.flash ? " gw-flash" : "");
      li.setAttribute("data-alarm-id", a.id);
      li.setAttribute("data-state", a.state);
      li.innerHTML = "";
      li.appendChild(gw.el("div", { class: "gw-a-head" }, [
        gw.el("span", { text: gw.alarmKind(a.kind) }),
        gw.el("span", { class: "gw-a-state " + a.state, text: gw.t("state_" + a.state) }),
      ]));
      li.appendChild(gw.el("div", { class: "gw-a-meta", text: gw.t("severity") + " " + a.severity + " · " + gw.time(a.raised_at) + " · " + (a.device_name || a.device_id) + (a.repeat_count > 1 ? " ×" + a.repeat_count : "") }));
      var buttons = gw.el("div", {});
      (NEXT[a.state] || []).forEach(function (pair, i) {
        buttons.appendChild(gw.el("button", {
          type: "button", class: i === 0 ? "primary" : "", "data-action": pair[0], text: gw.t(pair[1]),
          onclick: function (ev) { ev.stopPropagation(); act(a.id, pair[0], ev.target); },
        }));
      });
      li.appendChild(buttons);
      if (entry.cams) li.appendChild(entry.cams);
    }
    function markerStyle(a) {
      return { radius: 10, color: gw.sevColors[a.severity] || "#d33a2c", weight: 3, fill: true, fillColor: "#fff", fillOpacity: 0.9, pane: "gwAlarms", className: "gw-alarm-marker" + (OPEN[a.state] ? "" : " closed") };
    }
    function upsertAlarm(a, fresh) {
      var entry = alarms[a.id];
      if (!entry) {
        entry = alarms[a.id] = { data: a, li: gw.el("li", { onclick: function () { select(a.id); } }) };
        list.insertBefore(entry.li, list.firstChild);
      } else {
        entry.data = Object.assign(entry.data, a);
      }
      entry.flash = !!fresh;
      a = entry.data;
      if (a.lat !== null && a.lat !== undefined && a.lon !== null && a.lon !== undefined) {
        if (!entry.marker) {
          entry.marker = L.circleMarker([a.lat, a.lon], markerStyle(a)).addTo(alarmLayer);
          entry.marker.on("click", function () { select(a.id); });
        } else {
          entry.marker.setStyle(markerStyle(a));
          if (entry.marker._path) entry.marker._path.setAttribute("class", "leaflet-interactive " + markerStyle(a).className);
        }
      }
      renderItem(entry);
      if (!OPEN[a.state]) {
        setTimeout(function () {
          if (alarms[a.id] && !OPEN[alarms[a.id].data.state]) {
            if (alarms[a.id].marker) alarmLayer.removeLayer(alarms[a.id].marker);
            alarms[a.id].li.remove();
            delete alarms[a.id];
            if (selected === a.id) { highlight.clearLayers(); selected = null; }
            countAlarms();
          }
        }, 6000);
      }
      countAlarms();
      return entry;
    }
    function act(id, action, button) {
      if (button) button.disabled = true;
      gw.api("/alarms/" + id + "/" + action, { method: "POST", body: {} }).then(function (detail) {
        upsertAlarm(detail, false);
      }).catch(function (e) {
        if (button) button.disabled = false;
        gw.toast(e.message);
      });
    }
    function select(id) {
      selected = id;
      Object.keys(alarms).forEach(function (k) { alarms[k].li.classList.toggle("selected", Number(k) === id); });
      highlight.clearLayers();
      gw.api("/alarms/" + id).then(function (d) {
        var entry = upsertAlarm(d, false);
        var bounds = [];
        if (d.lat !== null && d.lat !== undefined) bounds.push([d.lat, d.lon]);
        var cams = gw.el("div", { class: "gw-a-cams" });
        if (!d.cameras.length) cams.textContent = gw.t("no_cameras");
        else cams.appendChild(gw.el("div", { text: gw.t("cameras_covering") + ":" }));
        d.cameras.forEach(function (c) {
          cams.appendChild(gw.el("div", { class: "gw-a-cam", "data-camera-id": c.device_id, text: "▸ " + (c.name || c.device_id) + (c.relation === "nearest" ? " (" + gw.t("nearest_camera") + (c.distance_m ? " " + Math.round(c.distance_m) + " m" : "") + ")" : "") }));
          if (c.fov) {
            L.geoJSON(c.fov, { pane: "gwHighlight", style: { color: "#ff7b00", weight: 3, fillColor: "#ffb347", fillOpacity: 0.35, className: "gw-cover-highlight" } }).addTo(highlight);
          }
          if (c.lat !== null && c.lat !== undefined) {
            L.circleMarker([c.lat, c.lon], { pane: "gwHighlight", radius: 7, color: "#ff7b00", weight: 3, fillColor: "#fff", fillOpacity: 1, className: "gw-cover-camera" }).addTo(highlight);
            bounds.push([c.lat, c.lon]);
          }
        });
        entry.cams = cams;
        renderItem(entry);
        if (bounds.length === 1) map.setView(bounds[0], Math.max(map.getZoom(), 16));
        else if (bounds.length > 1) map.fitBounds(bounds, { padding: [60, 60], maxZoom: 18 });
      }).catch(function (e) { gw.toast(e.message); });
    }
    function loadAlarms() {
      var q = "/alarms?state=open&limit=200" + (region ? "&region=" + region : "");
      return gw.api(q).then(function (page) {
        page.items.slice().reverse().forEach(function (a) { upsertAlarm(a, false); });
      });
    }

    // ---------------------------------------------------------------- stream
    var conn = document.getElementById("gw-conn");
    var connText = document.getElementById("gw-conn-text");
    var loaded = false;
    gw.stream(region, function (kind, ev) {
      var p = ev.payload || {};
      if (kind === "alarm.new") {
        upsertAlarm(p, true);
        gw.beep();
      } else if (kind === "alarm.updated") {
        if (alarms[p.id] || OPEN[p.state]) upsertAlarm(p, false);
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
        loadAlarms();
        loadUnits();
      }
    });

    // ---------------------------------------------------------------- layer control
    var control = null;
    function layerControl() {
      if (control) control.remove();
      var overlays = {};
      overlays[gw.t("layer_context")] = context;
      overlays[gw.t("layer_devices")] = devices;
      overlays[gw.t("layer_alarms")] = alarmLayer;
      overlays[gw.t("layer_units")] = units;
      overlays[gw.t("layer_highlight")] = highlight;
      control = L.control.layers(null, overlays, { collapsed: true, position: "topleft" }).addTo(map);
    }
    layerControl();
    gw.onLang.push(function () {
      layerControl();
      Object.keys(alarms).forEach(function (k) { renderItem(alarms[k]); });
    });
    gw.live = { map: map, alarms: alarms, devices: devices, select: select };
  };
})();
