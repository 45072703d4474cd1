/* gridwatch installer view: place a device (typed, tapped, GPS, compass, scanned label), preview its
   coverage and rules, save (or queue it when offline), watch it come online; find, fix and retire. */
(function () {
  "use strict";
  var gw = window.gw;

  // The installer's own words (zh, en); the shared ones come from gw.t.
  var WORDS = {
    scan: ["扫码", "Scan label"], scan_photo: ["拍标签识别", "Photo of label"], find: ["查找已登记", "Find registered"],
    use_location: ["使用我的位置", "Use my location"], swap: ["交换经纬度", "Swap lon/lat"], compass: ["用指南针", "Use compass"],
    compass_on: ["指南针跟随中（点击固定）", "Following compass (tap to hold)"],
    accept_type: ["确认按“其他”类型登记", "Register it as 'other' anyway"], queue: ["待发送（离线）", "Waiting to send (offline)"],
    retire: ["停用", "Retire"], cancel_edit: ["取消修改", "Cancel edit"], retire_confirm: ["确认停用", "Confirm retire"],
    retire_reason: ["停用原因", "Reason for retiring"], retired: ["已停用", "Retired"],
    editing: ["正在修改 {id}", "Editing {id}"], save_changes: ["保存修改", "Save changes"], changed: ["已保存修改", "Changes saved"],
    code_digits_only: ["设备编码只能包含数字 0-9", "the device code holds only the digits 0-9"],
    code_length: ["设备编码有 {n} 位，国标编码应为 20 位", "the device code has {n} digits; a GB/T 28181 code has 20"],
    need_coords: ["请填写经纬度，或点击地图、或使用我的位置", "give longitude and latitude, tap the map, or use your location"],
    not_number: ["经纬度必须是数字", "longitude and latitude must be numbers"],
    swapped: ["经纬度可能填反了：{lat} 像经度，{lon} 像纬度", "longitude and latitude look swapped: {lat} looks like a longitude, {lon} like a latitude"],
    out_of_range: ["经度应在 -180~180，纬度应在 -89~89", "longitude must be -180 to 180 and latitude -89 to 89"],
    located: ["定位精度约 {m} 米", "located to about {m} m"], geo_denied: ["未获得定位权限", "location permission was refused"],
    geo_failed: ["定位失败，请在空旷处重试或点击地图", "no position fix; try in the open or tap the map"],
    no_geolocation: ["此浏览器不支持定位（需 HTTPS）", "this browser cannot locate (HTTPS is needed)"],
    no_code: ["未在标签中识别到 20 位编码", "no 20-digit code found on the label"],
    scanned: ["已识别编码 {id}", "read code {id}"], no_camera: ["无法打开摄像头（需 HTTPS 与授权）", "cannot open the camera (HTTPS and permission needed)"],
    not_found: ["未找到该设备", "no such device"], queued: ["当前无网络：已加入待发送队列，联网后自动发送", "no connection: queued, it is sent when the phone is back online"],
    queue_conflict: ["被拒绝", "refused"], queue_waiting: ["等待网络", "waiting for network"], remove: ["移除", "remove"],
    resolve: ["处理", "resolve"], queue_compare: ["队列中的登记被拒绝（{reason}）：已载入现有设备并填入队列中的数值，核对后保存修改", "the queued registration was refused ({reason}): the existing device is open with the queued values over it; check them and save the changes"],
    village: ["村", "village"], township: ["乡镇", "township"],
    add_photo: ["添加安装照片", "Add installation photos"], photo_saved: ["照片已保存（{w}×{h}）", "photo saved ({w}×{h})"],
  };
  function say(key, vars) {
    var pair = WORDS[key];
    var text = pair ? (gw.lang === "en" ? pair[1] : pair[0]) : gw.t(key);
    Object.keys(vars || {}).forEach(function (k) { text = text.split("{" + k + "}").join(String(vars[k])); });
    return text;
  }
  function applyWords() {
    document.querySelectorAll("[data-i18n-w]").forEach(function (el) { el.textContent = say(el.getAttribute("data-i18n-w")); });
    document.querySelectorAll("[data-i18n-w-ph]").forEach(function (el) { el.placeholder = say(el.getAttribute("data-i18n-w-ph")); });
  }

  gw.views.install = function (map, cfg) {
    var $ = function (id) { return document.getElementById(id); };
    var field = gw.field;
    applyWords();
    gw.onLang.push(applyWords);
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

    // -------------------------------------------------------------- open at the installer's region
    function openAtOwnRegion() {
      map.invalidateSize();
      var regions = (gw.user && gw.user.regions) || [];
      var code = regions.length ? regions[0] : cfg.region;
      var fallback = function () { if (cfg.bounds) map.fitBounds(cfg.bounds); };
      if (!code) { fallback(); return; }
      gw.api("/regions/" + code).then(function (r) {
        if (r.bbox) map.fitBounds([[r.bbox[1], r.bbox[0]], [r.bbox[3], r.bbox[2]]]);
        else fallback();
      }).catch(fallback);
    }
    openAtOwnRegion();

    var marker = null;
    var accuracy = null;
    var sector = L.layerGroup().addTo(map);
    var adopting = null;
    var editing = null; // the device being changed (as GET /devices/{id} returned it)

    var heading = $("gw-i-heading");
    function setHeading(deg) { heading.value = String(deg); $("gw-i-heading-val").textContent = String(deg); }
    heading.addEventListener("input", function () { $("gw-i-heading-val").textContent = heading.value; stopCompass(); schedulePreview(); });
    function place(latlng) {
      if (!marker) {
        marker = L.marker(latlng, { draggable: true, title: "device" }).addTo(map);
        marker.on("dragend", function () { var ll = marker.getLatLng(); setCoords(ll.lng, ll.lat, "wgs84"); schedulePreview(); });
      } else {
        marker.setLatLng(latlng);
      }
      if (marker.getElement()) marker.getElement().setAttribute("data-pin", "typed");
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
        lon: Number($("gw-i-lon").value.trim() || NaN),
        lat: Number($("gw-i-lat").value.trim() || NaN),
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
      if ($("gw-i-accept-type").checked) out.accept_unassigned_type = true;
      return out;
    }

    // -------------------------------------------------------------- errors that say what is wrong
    function showTypedPoint(b) {
      // The typed point, on every error, so a wrong digit or a swap is seen on the map.
      if (isNaN(b.lon) || isNaN(b.lat) || Math.abs(b.lat) > 90 || Math.abs(b.lon) > 180) return;
      place([b.lat, b.lon]);
      map.panTo([b.lat, b.lon]);
    }
    function problem(e, b) {
      var text = "";
      if (e) {
        if (e.detail && e.detail.code && gw.errorText) text = gw.errorText(e);
        else text = e.message ? e.message : String(e);
      }
      $("gw-i-error").textContent = text;
      var unassigned = /accept_unassigned_type/.test(text);
      $("gw-i-confirm-type").classList.toggle("gw-hidden", !unassigned && !$("gw-i-accept-type").checked);
      if (text && b) showTypedPoint(b);
    }
    function looksSwapped(b) {
      return Math.abs(b.lat) > 89 && Math.abs(b.lat) <= 180 && Math.abs(b.lon) <= 89;
    }
    function check(b) {
      $("gw-i-swap").classList.add("gw-hidden");
      if (!/^[0-9]*$/.test(b.id)) return "id: " + say("code_digits_only");
      if (b.id.length !== 20) return "id: " + say("code_length", { n: b.id.length });
      if ($("gw-i-lon").value.trim() === "" || $("gw-i-lat").value.trim() === "") return say("need_coords");
      if (isNaN(b.lon) || isNaN(b.lat)) return say("not_number");
      if (looksSwapped(b)) {
        $("gw-i-swap").classList.remove("gw-hidden");
        return say("swapped", { lon: b.lon, lat: b.lat });
      }
      if (Math.abs(b.lon) > 180 || Math.abs(b.lat) > 89) return say("out_of_range");
      return null;
    }
    $("gw-i-swap").addEventListener("click", function () {
      var lon = $("gw-i-lon").value;
      $("gw-i-lon").value = $("gw-i-lat").value;
      $("gw-i-lat").value = lon;
      $("gw-i-swap").classList.add("gw-hidden");
      preview();
    });

    // -------------------------------------------------------------- preview
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
      var findings = (p.findings || []).filter(function (f) { return !(editing && /already registered/.test(f)); });
      if (findings.length) {
        box.appendChild(gw.el("b", { text: gw.t("findings") }));
        var fl = gw.el("ul", {});
        findings.forEach(function (f) { fl.appendChild(gw.el("li", { text: f })); });
        box.appendChild(fl);
      }
      if (p.sector) map.fitBounds(L.geoJSON(p.sector).getBounds().pad(1.5), { maxZoom: 18 });
    }
    var saving = false;
    function preview() {
      if (saving) return Promise.resolve(null);
      var b = body();
      var bad = check(b);
      if (bad) { problem(bad, b); return Promise.resolve(null); }
      return gw.api("/devices/preview", { method: "POST", body: b }).then(function (p) {
        if (!saving) { problem(""); drawPreview(p); }
        return p;
      }).catch(function (e) { if (!saving) problem(e, b); });
    }
    var schedulePreview = gw.debounce(function () {
      if (!check(body())) preview();
    }, 500);
    $("gw-i-preview").addEventListener("click", preview);
    ["gw-i-focal", "gw-i-sensor", "gw-i-res", "gw-i-crs"].forEach(function (id) { $(id).addEventListener("change", schedulePreview); });
    ["gw-i-lon", "gw-i-lat"].forEach(function (id) { $(id).addEventListener("change", schedulePreview); });
    $("gw-i-accept-type").addEventListener("change", schedulePreview);
    $("gw-i-form").addEventListener("input", function () { if (editing) saving = false; });

    // -------------------------------------------------------------- locate and aim
    $("gw-i-locate").addEventListener("click", function () {
      $("gw-i-accuracy").textContent = "…";
      field.locate().then(function (fix) {
        setCoords(fix.lon, fix.lat, "wgs84");
        place([fix.lat, fix.lon]);
        if (accuracy) accuracy.remove();
        accuracy = L.circle([fix.lat, fix.lon], { radius: fix.accuracy_m, color: "#2b6cb0", weight: 1, fillOpacity: 0.1, className: "gw-accuracy" }).addTo(map);
        map.fitBounds(accuracy.getBounds().pad(0.5), { maxZoom: 18 });
        $("gw-i-accuracy").textContent = say("located", { m: Math.round(fix.accuracy_m) });
        schedulePreview();
      }, function (e) { $("gw-i-accuracy").textContent = say(e.message); });
    });
    var stopCompassWatch = null;
    function stopCompass() {
      if (!stopCompassWatch) return;
      stopCompassWatch();
      stopCompassWatch = null;
      $("gw-i-compass").setAttribute("aria-pressed", "false");
      $("gw-i-compass").textContent = say("compass");
    }
    $("gw-i-compass").addEventListener("click", function () {
      if (stopCompassWatch) { stopCompass(); schedulePreview(); return; }
      $("gw-i-compass").setAttribute("aria-pressed", "true");
      $("gw-i-compass").textContent = say("compass_on");
      stopCompassWatch = field.watchHeading(function (deg) { setHeading(deg); schedulePreview(); });
    });

    // -------------------------------------------------------------- the label's code
    function gotCode(code) {
      $("gw-i-id").value = code;
      gw.toast(say("scanned", { id: code }));
      schedulePreview();
    }
    var scanning = null;
    $("gw-i-scan").addEventListener("click", function () {
      var video = $("gw-i-video");
      if (scanning) { scanning.stop(); scanning = null; video.classList.add("gw-hidden"); return; }
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { problem(say("no_camera")); return; }
      video.classList.remove("gw-hidden");
      scanning = field.scanCamera(video);
      scanning.promise.then(gotCode, function (e) { if (e.message !== "stopped") problem(say("no_camera")); })
        .finally(function () { scanning = null; video.classList.add("gw-hidden"); });
    });
    $("gw-i-photo").addEventListener("change", function () {
      var file = this.files && this.files[0];
      if (!file) return;
      field.decodePhoto(file).then(function (text) {
        var code = field.codeIn(text);
        if (code) gotCode(code); else problem(say("no_code"));
      }, function () { problem(say("no_code")); });
      this.value = "";
    });

    // -------------------------------------------------------------- names, not codes
    function placeNames(regionCode) {
      if (!regionCode) return Promise.resolve("");
      return gw.api("/regions/" + regionCode).then(function (r) {
        if (!r.parent_code || r.level < 5) return r.name;
        return gw.api("/regions/" + r.parent_code).then(function (t) { return t.name + " · " + r.name; }, function () { return r.name; });
      }).catch(function () { return regionCode; });
    }

    // -------------------------------------------------------------- find, fix, retire
    function setEditing(dev) {
      editing = dev;
      $("gw-i-mode").classList.toggle("gw-hidden", !dev);
      $("gw-i-retire-box").classList.add("gw-hidden");
      $("gw-i-save").textContent = dev ? say("save_changes") : gw.t("save");
      $("gw-i-id").readOnly = !!dev;
      if (dev) $("gw-i-mode-text").textContent = say("editing", { id: dev.id });
    }
    function selectValue(id, value) {
      var sel = $(id);
      if (value === null || value === undefined) return;
      var text = String(value);
      if (![].some.call(sel.options, function (o) { return o.value === text; })) sel.appendChild(gw.el("option", { text: text }));
      sel.value = text;
    }
    function findDevice(id) {
      /* Load a registered device into the form for editing; resolves to it (or rejects). */
      return gw.api("/devices/" + id + "?with_fov=true").then(function (d) {
        problem("");
        setEditing(d);
        $("gw-i-name").value = d.name || "";
        if (d.lon !== null) { setCoords(d.lon, d.lat, "wgs84"); place([d.lat, d.lon]); }
        if (d.heading_deg !== null && d.heading_deg !== undefined) setHeading(Math.round(d.heading_deg) % 360);
        selectValue("gw-i-focal", d.focal_mm);
        selectValue("gw-i-sensor", d.sensor_format);
        if (d.resolution_w) selectValue("gw-i-res", d.resolution_w + "x" + d.resolution_h);
        if (d.mount_height_m !== null && d.mount_height_m !== undefined) $("gw-i-height").value = d.mount_height_m;
        preview();
        return d;
      });
    }
    $("gw-i-find").addEventListener("click", function () {
      var id = $("gw-i-id").value.trim();
      var bad = check({ id: id, lon: 0, lat: 0 });
      if (bad && /^id:/.test(bad)) { problem(bad); return; }
      findDevice(id).catch(function (e) { problem(e.status === 404 ? say("not_found") : e); });
    });
    function fillFromQueued(b) {
      /* Put a queued registration's values into the form (over a loaded device's). */
      if (b.name) $("gw-i-name").value = b.name;
      if (!isNaN(b.lon) && !isNaN(b.lat)) { setCoords(b.lon, b.lat, b.crs); showTypedPoint(b); }
      if (b.heading_deg !== undefined) setHeading(Math.round(b.heading_deg) % 360);
      selectValue("gw-i-focal", b.focal_mm);
      selectValue("gw-i-sensor", b.sensor_format);
      if (b.resolution_w) selectValue("gw-i-res", b.resolution_w + "x" + b.resolution_h);
      if (b.mount_height_m !== undefined) $("gw-i-height").value = b.mount_height_m;
    }
    function resolveQueued(q) {
      /* A refused queued registration: open the device it collides with (the queued values
         over it, to compare and save as a change) or, when there is none, the queued form with
         the server's reason. The queue entry goes: its values are in the form now. */
      var b = q.body;
      setEditing(null);
      resetForm();
      $("gw-i-id").value = b.id;
      findDevice(b.id).then(function () {
        fillFromQueued(b);
        schedulePreview();
        $("gw-i-mode-text").textContent = say("editing", { id: b.id }) + " · " + say("queue_compare", { reason: q.message });
      }, function () {
        fillFromQueued(b);
        schedulePreview();
        problem(q.message, b);
      });
      field.queue.drop(b.id);
      showQueue();
    }
    $("gw-i-cancel-edit").addEventListener("click", function () { setEditing(null); resetForm(); });
    $("gw-i-retire").addEventListener("click", function () { $("gw-i-retire-box").classList.toggle("gw-hidden"); });
    $("gw-i-retire-confirm").addEventListener("click", function () {
      if (!editing) return;
      var reason = $("gw-i-retire-reason").value.trim();
      gw.api("/devices/" + editing.id + "/retire", { method: "POST", body: reason ? { reason: reason } : {} }).then(function () {
        gw.toast(say("retired") + ": " + editing.id);
        setEditing(null);
        resetForm();
      }, function (e) { problem(e); });
    });
    function changes(b) {
      var out = {};
      var before = editing;
      if (Math.abs(b.lon - before.lon) > 1e-7 || Math.abs(b.lat - before.lat) > 1e-7 || b.crs !== "wgs84") {
        out.lon = b.lon; out.lat = b.lat; out.crs = b.crs;
      }
      ["name", "heading_deg", "focal_mm", "sensor_format", "resolution_w", "resolution_h", "mount_height_m"].forEach(function (k) {
        if (b[k] !== undefined && b[k] !== before[k] && !(typeof b[k] === "number" && typeof before[k] === "number" && Math.abs(b[k] - before[k]) < 1e-6)) out[k] = b[k];
      });
      return out;
    }

    // -------------------------------------------------------------- save (or queue)
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
    function resetForm() {
      $("gw-i-id").value = ""; $("gw-i-name").value = ""; $("gw-i-result").innerHTML = ""; sector.clearLayers();
      $("gw-i-save").disabled = false; adopting = null; saving = false;
      $("gw-i-accept-type").checked = false; $("gw-i-confirm-type").classList.add("gw-hidden");
      if (watching) watching.close();
    }
    function register(b) {
      return adopting === b.id
        ? gw.api("/pending-devices/" + b.id + "/adopt", { method: "POST", body: Object.assign({}, b, { id: undefined }) })
        : gw.api("/devices", { method: "POST", body: b });
    }
    function showSaved(out, title) {
      var box = $("gw-i-result");
      box.innerHTML = "";
      box.appendChild(gw.el("div", {}, [gw.el("b", { text: title + ": " + ($("gw-i-name").value.trim() || out.id) })]));
      var where = gw.el("div", { id: "gw-i-where", text: "…" });
      box.appendChild(where);
      placeNames(out.region_code).then(function (names) { where.textContent = names || "–"; });
      if (out.findings && out.findings.length) {
        var fl = gw.el("ul", {});
        out.findings.forEach(function (f) { fl.appendChild(gw.el("li", { text: f })); });
        box.appendChild(fl);
      }
      if (out.fov_geojson) { sector.clearLayers(); L.geoJSON(out.fov_geojson, { style: { color: "#1e9e4a", weight: 2, fillOpacity: 0.3 } }).addTo(sector); }
      return box;
    }
    $("gw-i-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var b = body();
      var bad = check(b);
      if (bad) { problem(bad, b); return; }
      problem("");
      if (editing) {
        saving = true; // a preview still pending from the typing must not replace the answer
        var diff = changes(b);
        if (!Object.keys(diff).length) { gw.toast(say("changed")); return; }
        gw.api("/devices/" + editing.id, { method: "PATCH", body: diff }).then(function (out) {
          showSaved(out, say("changed"));
          return gw.api("/devices/" + editing.id + "?with_fov=false").then(function (d) { editing = d; });
        }, function (e) { problem(e, b); });
        return;
      }
      saving = true;
      $("gw-i-save").disabled = true;
      register(b).then(function (out) {
        var box = showSaved(out, gw.t("saved"));
        box.appendChild(gw.el("p", {}, [gw.el("span", { id: "gw-i-status", class: "gw-status-pill unknown", "data-status": "unknown", text: gw.t("waiting_heartbeat") })]));
        gw.api("/devices/" + out.id + "/mqtt-credentials", { method: "POST" }).then(function (c) {  // a new password, shown once
          box.appendChild(gw.el("b", { text: gw.t("mqtt_creds") }));
          box.appendChild(gw.el("div", { class: "gw-creds", id: "gw-i-creds", text: (c.url || "mqtt://" + c.host + ":" + c.port) + "  user " + c.username + "  password " + c.password + "  topic " + c.topics.heartbeat }));
        }).catch(function () {});
        box.appendChild(photoPicker(out.id));
        box.appendChild(gw.el("button", { type: "button", class: "secondary", text: gw.t("new_device"), onclick: resetForm }));
        watch(out.id, out.region_code);
        loadPending();
      }).catch(function (e) {
        saving = false;
        $("gw-i-save").disabled = false;
        if (field.isOffline(e)) {
          field.queue.add(b);
          showQueue();
          problem(say("queued"));
          return;
        }
        problem(e, b);
      });
    });

    // -------------------------------------------------------------- installation photos
    function photoPicker(id) {
      var list = gw.el("ul", { class: "gw-i-photos", id: "gw-i-photos" });
      var input = gw.el("input", { type: "file", accept: "image/jpeg,image/png", capture: "environment", multiple: "multiple", id: "gw-i-photo-add", class: "gw-hidden" });
      input.addEventListener("change", function () {
        [].forEach.call(input.files || [], function (file) {
          var item = gw.el("li", { text: file.name + " …" });
          list.appendChild(item);
          gw.api("/devices/" + id + "/photos", { method: "POST", raw: file, contentType: file.type || "image/jpeg" }).then(function (p) {
            item.textContent = say("photo_saved", { w: p.width, h: p.height });
            item.setAttribute("data-photo-id", p.id);
          }, function (e) { item.textContent = file.name + ": " + (e.message || e.status); });
        });
        input.value = "";
      });
      return gw.el("div", {}, [
        gw.el("label", { for: "gw-i-photo-add", class: "gw-i-photo secondary", text: say("add_photo") }),
        input,
        list,
      ]);
    }

    // -------------------------------------------------------------- the offline queue
    function showQueue() {
      var items = field.queue.items();
      $("gw-i-queue-box").classList.toggle("gw-hidden", !items.length);
      var ul = $("gw-i-queue");
      ul.innerHTML = "";
      items.forEach(function (q) {
        var state = q.state === "conflict" ? say("queue_conflict") + ": " + q.message : say("queue_waiting");
        ul.appendChild(gw.el("li", { class: "gw-alarm sev-" + (q.state === "conflict" ? "2" : "4"), "data-queued-id": q.body.id, "data-state": q.state }, [
          gw.el("div", { class: "gw-a-head", text: (q.body.name ? q.body.name + " · " : "") + q.body.id }),
          gw.el("div", { class: "gw-a-meta", text: gw.time(q.queued_at) + " · " + state }),
          q.state === "conflict" ? gw.el("button", { type: "button", class: "gw-i-resolve", text: say("resolve"), onclick: function () { resolveQueued(q); } }) : null,
          gw.el("button", { type: "button", class: "secondary", text: say("remove"), onclick: function () { field.queue.drop(q.body.id); showQueue(); } }),
        ]));
      });
    }
    /* Send what waits: on 'online', at load, and every few seconds while anything waits.
       navigator.onLine is not asked: a phone on a private network without internet (or a
       browser that cannot tell) may say offline while the hub answers; a failed send is the
       only sure sign, and it leaves the item waiting. */
    var flushing = false;
    function flushQueue() {
      if (flushing || !field.queue.items().some(function (q) { return q.state === "waiting"; })) return;
      flushing = true;
      field.queue.flush(register).then(function () { flushing = false; showQueue(); loadPending(); },
        function () { flushing = false; });
    }
    window.addEventListener("online", flushQueue);
    setInterval(flushQueue, 5000);
    showQueue();
    flushQueue();

    function loadPending() {
      gw.api("/pending-devices?limit=20").then(function (page) {
        var ul = $("gw-i-pending");
        ul.innerHTML = "";
        page.items.forEach(function (p) {
          ul.appendChild(gw.el("li", { class: "gw-alarm sev-4", "data-pending-id": p.id, onclick: function () {
            adopting = p.id;
            setEditing(null);
            $("gw-i-id").value = p.id;
            if (p.lon !== null && p.lon !== undefined) { setCoords(p.lon, p.lat, "wgs84"); place([p.lat, p.lon]); }
            schedulePreview();
          } }, [gw.el("div", { class: "gw-a-head", text: p.id }), gw.el("div", { class: "gw-a-meta", text: (p.kind || "") + " · " + p.message_count + " msg · " + gw.time(p.last_seen) })]));
        });
        if (!page.items.length) ul.appendChild(gw.el("li", { class: "gw-empty", text: "–" }));
      }).catch(function () {});
    }
    loadPending();
    if ("serviceWorker" in navigator && cfg.installWorker) {
      navigator.serviceWorker.register(cfg.installWorker, { scope: "/install" }).catch(function () {});
    }
    gw.install = { preview: preview, map: map, flushQueue: flushQueue };
  };
})();
