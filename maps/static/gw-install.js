/* gridwatch installer view: place a device, preview its coverage and rules, save, watch it come online. */
(function () {
  "use strict";
  var gw = window.gw;

  gw.views.install = function (map, cfg) {
    var $ = function (id) { return document.getElementById(id); };
    map.createPane("gwContext").style.zIndex = 350;
    if (!cfg.tileUrl) map.getContainer().style.background = "#eef1f4";
    gw.tiles("context", {
      regions: function (p) { return { weight: p.level <= 3 ? 2 : 1, color: "#4a5a70", fill: false, dashArray: p.level >= 5 ? "3 3" : null }; },
      grids: { weight: 0.8, color: "#7c5cb8", fill: false, dashArray: "2 4" },
      key_sites: { weight: 1, color: "#2b6cb0", fillColor: "#2b6cb0", fillOpacity: 0.12, fill: true, radius: 4 },
      roads: { weight: 1.2, color: "#c9b98f", fill: false },
      railways: { weight: 2, color: "#555", dashArray: "6 3", fill: false },
      geofences: { weight: 1, color: "#c0392b", fill: false },
    }, { pane: "gwContext" }).addTo(map);
    gw.tiles("devices", {
      devices: function (p) {
        var c = gw.colors[p.status] || gw.colors.unknown;
        if (p.cluster) return { radius: Math.min(16, 3 + 2 * Math.log2((p.count || 1) + 1)), fill: true, fillColor: "#6d7d92", fillOpacity: 0.5, color: "#fff", weight: 1 };
        return { radius: 4, fill: true, fillColor: c, fillOpacity: 0.9, color: "#fff", weight: 1 };
      },
      coverage: function (p) { var c = gw.colors[p.status] || gw.colors.unknown; return { fill: true, fillColor: c, fillOpacity: 0.12, color: c, weight: 0.5 }; },
    }).addTo(map);

    var marker = null;
    var sector = L.layerGroup().addTo(map);
    var adopting = null;

    var heading = $("gw-i-heading");
    heading.addEventListener("input", function () { $("gw-i-heading-val").textContent = heading.value; schedulePreview(); });
    function place(latlng, crs) {
      if (!marker) {
        marker = L.marker(latlng, { draggable: true, title: "device" }).addTo(map);
        marker.on("dragend", function () { var ll = marker.getLatLng(); setCoords(ll.lng, ll.lat, "wgs84"); schedulePreview(); });
      } else {
        marker.setLatLng(latlng);
      }
    }
    function setCoords(lon, lat, crs) {
      $("gw-i-lon").value = lon.toFixed(6);
      $("gw-i-lat").value = lat.toFixed(6);
      if (crs) $("gw-i-crs").value = crs;
    }
    map.on("click", function (e) {
      setCoords(e.latlng.lng, e.latlng.lat, "wgs84");
      place(e.latlng);
      schedulePreview();
    });

    function body() {
      var res = $("gw-i-res").value.split("x");
      var out = {
        id: $("gw-i-id").value.trim(),
        lon: parseFloat($("gw-i-lon").value),
        lat: parseFloat($("gw-i-lat").value),
        crs: $("gw-i-crs").value,
        heading_deg: Number(heading.value),
        focal_mm: parseFloat($("gw-i-focal").value),
        sensor_format: $("gw-i-sensor").value,
        resolution_w: Number(res[0]),
        resolution_h: Number(res[1]),
      };
      var h = parseFloat($("gw-i-height").value);
      if (!isNaN(h)) out.mount_height_m = h;
      var name = $("gw-i-name").value.trim();
      if (name) out.name = name;
      return out;
    }
    function problem(e) {
      $("gw-i-error").textContent = e && e.message ? e.message : String(e);
    }
    function check(b) {
      if (!/^[0-9]{20}$/.test(b.id)) return "id: " + gw.t("device_code");
      if (isNaN(b.lon) || isNaN(b.lat)) return gw.t("coords") + ": " + gw.t("tap_map");
      return null;
    }

    function drawPreview(p) {
      sector.clearLayers();
      place([p.lat, p.lon]);
      if (p.sector) L.geoJSON(p.sector, { style: { color: "#ff7b00", weight: 2, fillColor: "#ffb347", fillOpacity: 0.35, className: "gw-preview-sector" } }).addTo(sector);
      var box = $("gw-i-result");
      box.innerHTML = "";
      box.appendChild(gw.el("div", { text: p.kind_label + " · " + (p.region_name || p.region_code || "") + (p.grid_name ? " · " + p.grid_name : "") }));
      if (p.hfov_deg) box.appendChild(gw.el("div", { class: "gw-empty", text: "HFOV " + p.hfov_deg.toFixed(1) + "°, " + Math.round(p.range_m) + " m" }));
      if (p.rules.length) {
        box.appendChild(gw.el("b", { text: gw.t("rules_helped") }));
        var ul = gw.el("ul", { id: "gw-i-rules" });
        p.rules.forEach(function (r) {
          ul.appendChild(gw.el("li", { "data-rule": r.rule, text: (r.unit_name ? r.unit_name + ": " : "") + r.note + (r.passes_after ? " ✓" : "") }));
        });
        box.appendChild(ul);
      }
      if (p.findings.length) {
        box.appendChild(gw.el("b", { text: gw.t("findings") }));
        var fl = gw.el("ul", {});
        p.findings.forEach(function (f) { fl.appendChild(gw.el("li", { text: f })); });
        box.appendChild(fl);
      }
      if (p.sector) map.fitBounds(L.geoJSON(p.sector).getBounds().pad(1.5), { maxZoom: 18 });
    }
    var saving = false;
    function preview() {
      if (saving) return Promise.resolve(null);
      var b = body();
      var bad = check(b);
      if (bad) { problem(bad); return Promise.resolve(null); }
      problem("");
      return gw.api("/devices/preview", { method: "POST", body: b }).then(function (p) {
        if (!saving) drawPreview(p);
        return p;
      }).catch(function (e) { if (!saving) problem(e); });
    }
    var schedulePreview = gw.debounce(function () {
      if (!check(body())) preview();
    }, 500);
    $("gw-i-preview").addEventListener("click", preview);
    ["gw-i-focal", "gw-i-sensor", "gw-i-res", "gw-i-crs"].forEach(function (id) { $(id).addEventListener("change", schedulePreview); });
    ["gw-i-lon", "gw-i-lat"].forEach(function (id) { $(id).addEventListener("change", schedulePreview); });

    var watching = null;
    function showStatus(status) {
      var pill = $("gw-i-status");
      if (!pill) return;
      pill.className = "gw-status-pill " + status;
      pill.setAttribute("data-status", status);
      pill.textContent = status === "online" ? gw.t("now_online") : gw.t("waiting_heartbeat");
    }
    function watch(id, region) {
      if (watching) watching.close();
      watching = gw.stream(region, function (kind, ev) {
        var p = ev.payload || {};
        if (kind === "device.status" && p.device_id === id) showStatus(p.status);
      }, function () {});
      var poll = setInterval(function () {
        gw.api("/devices/" + id + "?with_fov=false").then(function (d) {
          if (d.status === "online") { showStatus("online"); clearInterval(poll); }
        }).catch(function () {});
      }, 5000);
    }
    $("gw-i-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var b = body();
      var bad = check(b);
      if (bad) { problem(bad); return; }
      problem("");
      saving = true;
      $("gw-i-save").disabled = true;
      var req = adopting === b.id
        ? gw.api("/pending-devices/" + b.id + "/adopt", { method: "POST", body: Object.assign({}, b, { id: undefined }) })
        : gw.api("/devices", { method: "POST", body: b });
      req.then(function (out) {
        var box = $("gw-i-result");
        box.innerHTML = "";
        box.appendChild(gw.el("div", {}, [gw.el("b", { text: gw.t("saved") + ": " + out.id })]));
        box.appendChild(gw.el("div", { text: (out.region_code || "") + (out.grid_id ? " · grid " + out.grid_id : "") }));
        box.appendChild(gw.el("p", {}, [gw.el("span", { id: "gw-i-status", class: "gw-status-pill unknown", "data-status": "unknown", text: gw.t("waiting_heartbeat") })]));
        if (out.findings && out.findings.length) {
          var fl = gw.el("ul", {});
          out.findings.forEach(function (f) { fl.appendChild(gw.el("li", { text: f })); });
          box.appendChild(fl);
        }
        gw.api("/devices/" + out.id + "/mqtt-credentials").then(function (c) {
          box.appendChild(gw.el("b", { text: gw.t("mqtt_creds") }));
          box.appendChild(gw.el("div", { class: "gw-creds", id: "gw-i-creds", text: "mqtt://" + c.host + ":" + c.port + "  user " + c.username + "  password " + c.password + "  topic " + c.topics.heartbeat }));
        }).catch(function () {});
        box.appendChild(gw.el("button", { type: "button", class: "secondary", text: gw.t("new_device"), onclick: function () {
          $("gw-i-id").value = ""; $("gw-i-name").value = ""; box.innerHTML = ""; sector.clearLayers(); $("gw-i-save").disabled = false; adopting = null; saving = false;
          if (watching) watching.close();
        } }));
        if (out.fov_geojson) L.geoJSON(out.fov_geojson, { style: { color: "#1e9e4a", weight: 2, fillOpacity: 0.3 } }).addTo(sector);
        watch(out.id, out.region_code);
        loadPending();
      }).catch(function (e) {
        saving = false;
        $("gw-i-save").disabled = false;
        problem(e);
      });
    });

    function loadPending() {
      gw.api("/pending-devices?limit=20").then(function (page) {
        var ul = $("gw-i-pending");
        ul.innerHTML = "";
        page.items.forEach(function (p) {
          ul.appendChild(gw.el("li", { class: "gw-alarm sev-4", "data-pending-id": p.id, onclick: function () {
            adopting = p.id;
            $("gw-i-id").value = p.id;
            if (p.lon !== null && p.lon !== undefined) { setCoords(p.lon, p.lat, "wgs84"); place([p.lat, p.lon]); }
            schedulePreview();
          } }, [gw.el("div", { class: "gw-a-head", text: p.id }), gw.el("div", { class: "gw-a-meta", text: (p.kind || "") + " · " + p.message_count + " msg · " + gw.time(p.last_seen) })]));
        });
        if (!page.items.length) ul.appendChild(gw.el("li", { class: "gw-empty", text: "–" }));
      }).catch(function () {});
    }
    loadPending();
    gw.install = { preview: preview, map: map };
  };
})();
