/* gridwatch operator: a device's side panel (picture, video-quality health with evidence, 24 h online history, optics, linked alarms). */
(function () {
  "use strict";
  var gw = window.gw;
  var DAY_MS = 24 * 3600 * 1000;

  function has(v) { return v !== null && v !== undefined; }
  function section(title, key) { return gw.el("section", { class: "gw-cp-section gw-cp-" + key }, [gw.el("h3", { text: title })]); }
  function ago(iso) {
    var s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }

  /* the camera's latest picture (privacy-masked by the hub) and how old it is */
  gw.snapshotBox = function (id) {
    var box = gw.el("div", { class: "gw-snapshot", "data-camera-id": id });
    fetch(gw.cfg.api + "/devices/" + id + "/snapshot", { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          box.appendChild(gw.el("div", { class: "gw-empty", "data-code": j.code || "", text: gw.errorText({ code: j.code, message: j.detail, status: r.status }) }));
        });
      }
      var at = r.headers.get("X-Snapshot-At");
      return r.blob().then(function (blob) {
        var img = gw.el("img", { class: "gw-snapshot-img", alt: "snapshot " + id, src: URL.createObjectURL(blob) });
        img.addEventListener("load", function () { URL.revokeObjectURL(img.src); });
        box.appendChild(img);
        if (at) box.appendChild(gw.el("div", { class: "gw-snapshot-age", "data-at": at, text: gw.t("snapshot_at") + " " + gw.time(at) + " (" + ago(at) + ")" }));
      });
    }).catch(function () {});
    return box;
  };

  function healthSection(id) {
    var box = section(gw.t("vqd_health"), "health");
    gw.api("/devices/" + id + "/health").then(function (h) {
      box.setAttribute("data-checked", h.checked ? "1" : "0");
      if (!h.checked) { box.appendChild(gw.el("div", { class: "gw-empty", text: gw.t("not_checked") })); return; }
      box.setAttribute("data-intact", h.intact ? "1" : "0");
      if (h.intact) {
        box.appendChild(gw.el("div", { class: "gw-cp-intact", text: "✓ " + gw.t("intact") + " · " + gw.t("checked_at") + " " + gw.time(h.checked_at) }));
        return;
      }
      box.appendChild(gw.el("div", { class: "gw-sub", text: gw.t("checked_at") + " " + gw.time(h.checked_at) }));
      h.faults.forEach(function (f) {
        var label = gw.t("fault_" + f.code);
        var row = gw.el("div", { class: "gw-cp-fault", "data-fault": f.code }, [
          gw.el("b", { text: "⚠ " + (label === "fault_" + f.code ? f.code : label) }),
          gw.el("span", { class: "gw-sub", text: " · " + gw.t("since") + " " + gw.time(f.since) + " (" + ago(f.since) + ")" + (has(f.score) ? " · " + f.score.toFixed(2) : "") }),
        ]);
        if (f.evidence_at) {
          row.appendChild(gw.el("img", {
            class: "gw-cp-evidence", alt: "evidence " + f.code, loading: "lazy",
            src: gw.cfg.api + "/devices/" + id + "/health/evidence?at=" + encodeURIComponent(f.evidence_at),
          }));
        }
        box.appendChild(row);
      });
    }).catch(function (e) { box.appendChild(gw.el("div", { class: "gw-empty", text: gw.errorText(e) })); });
    return box;
  }

  function presenceSection(id) {
    var box = section(gw.t("online_24h"), "presence");
    gw.api("/devices/" + id + "/presence?hours=24").then(function (p) {
      var t0 = new Date(p.since).getTime(), t1 = new Date(p.until).getTime(), span = Math.max(1, t1 - t0);
      var bar = gw.el("div", { class: "gw-cp-bar", role: "img", "data-intervals": String(p.intervals.length) });
      p.intervals.forEach(function (iv) {
        var a = Math.max(t0, new Date(iv.start).getTime()), b = iv.end ? Math.min(t1, new Date(iv.end).getTime()) : t1;
        if (b <= a) return;
        bar.appendChild(gw.el("i", {
          class: "gw-cp-up", title: gw.time(iv.start) + " – " + (iv.end ? gw.time(iv.end) : gw.t("now")),
          style: "left:" + (100 * (a - t0) / span).toFixed(2) + "%;width:" + Math.max(0.3, 100 * (b - a) / span).toFixed(2) + "%",
        }));
      });
      var share = has(p.online_share) ? Math.round(p.online_share * 1000) / 10 + "%" : "–";
      box.setAttribute("data-share", has(p.online_share) ? String(p.online_share) : "");
      box.appendChild(bar);
      box.appendChild(gw.el("div", { class: "gw-cp-scale" }, [gw.el("span", { text: "-24 h" }), gw.el("b", { class: "gw-cp-share", text: gw.t("online") + " " + share }), gw.el("span", { text: gw.t("now") })]));
      if (!p.intervals.length) box.appendChild(gw.el("div", { class: "gw-empty", text: gw.t("never_online_24h") }));
    }).catch(function (e) { box.appendChild(gw.el("div", { class: "gw-empty", text: gw.errorText(e) })); });
    return box;
  }

  function opticsSection(d) {
    var box = section(gw.t("optics_title"), "optics");
    var lens = has(d.focal_mm) ? d.focal_mm + (has(d.focal_max_mm) ? "–" + d.focal_max_mm : "") + " mm" : "–";
    var rows = [
      [gw.t("focal_length"), lens],
      [gw.t("sensor"), d.sensor_format || "–"],
      [gw.t("resolution"), has(d.resolution_w) ? d.resolution_w + "×" + d.resolution_h : "–"],
      [gw.t("fov"), has(d.hfov_deg) ? Math.round(d.hfov_deg * 10) / 10 + "°" : "–"],
      [gw.t("range"), has(d.range_m) ? Math.round(d.range_m) + " m" : "–"],
      [gw.t("heading"), has(d.heading_deg) ? Math.round(d.heading_deg) + "°" : "–"],
      [gw.t("height"), has(d.mount_height_m) ? d.mount_height_m + " m" : "–"],
      ["PTZ", d.ptz ? "✓" : "–"],
    ];
    box.appendChild(gw.el("table", { class: "gw-table" }, rows.map(function (r) {
      return gw.el("tr", {}, [gw.el("th", { text: r[0] }), gw.el("td", { text: String(r[1]) })]);
    })));
    return box;
  }

  function alarmsSection(id) {
    var box = section(gw.t("linked_alarms"), "alarms");
    gw.api("/devices/" + id + "/alarms?limit=20").then(function (list) {
      box.setAttribute("data-n", String(list.length));
      if (!list.length) { box.appendChild(gw.el("div", { class: "gw-empty", text: gw.t("no_linked_alarms") })); return; }
      var ul = gw.el("ul", { class: "gw-cp-alarms" });
      list.forEach(function (a) {
        var rel = a.relation === "own" ? gw.t("rel_own") : a.relation === "covers" ? gw.t("rel_covers") : gw.t("rel_nearest") + (has(a.distance_m) ? " " + Math.round(a.distance_m) + " m" : "");
        var li = gw.el("li", { class: "gw-cp-alarm sev-" + a.severity, "data-alarm-id": String(a.id), "data-state": a.state, "data-relation": a.relation, role: "button", tabindex: "0" }, [
          gw.el("b", { text: gw.alarmKind(a.kind) }),
          gw.el("span", { class: "gw-sub", text: " · " + gw.t("state_" + a.state) + " · " + rel + " · " + gw.time(a.raised_at) }),
        ]);
        li.addEventListener("click", function () { if (gw.live && gw.live.select) gw.live.select(a.id); });
        ul.appendChild(li);
      });
      box.appendChild(ul);
    }).catch(function (e) { box.appendChild(gw.el("div", { class: "gw-empty", text: gw.errorText(e) })); });
    return box;
  }

  /* live view: the hub starts FFmpeg on the camera's RTSP stream and serves HLS; hls.js (npm) plays it */
  var watching = null; // {device, url, hls}
  var hlsLoading = null;
  function loadHls() { // hls.js is fetched (from the hub) the first time a live view starts
    if (window.Hls || !gw.cfg.hlsScript) return Promise.resolve();
    if (!hlsLoading) {
      hlsLoading = new Promise(function (resolve) {
        var s = document.createElement("script");
        s.src = gw.cfg.hlsScript;
        s.onload = resolve;
        s.onerror = function () { hlsLoading = null; resolve(); }; // the browser's own HLS, if any
        document.head.appendChild(s);
      });
    }
    return hlsLoading;
  }
  function stopLive() {
    if (!watching) return;
    var w = watching;
    watching = null;
    if (w.hls) w.hls.destroy();
    if (w.url) gw.api(w.url.replace(gw.cfg.api, ""), { method: "DELETE" }).catch(function () {});
  }
  gw.liveView = function (d) {
    var box = section(gw.t("live_view"), "live");
    if (!d.has_stream) { box.appendChild(gw.el("div", { class: "gw-empty", text: gw.t("no_stream") })); return box; }
    var btn = gw.el("button", { type: "button", class: "gw-live-start", text: "▶ " + gw.t("watch_live") });
    var note = gw.el("div", { class: "gw-sub gw-live-note" });
    box.appendChild(btn);
    box.appendChild(note);
    btn.addEventListener("click", function () {
      stopLive();
      btn.disabled = true;
      note.textContent = gw.t("live_starting");
      var t0 = performance.now();
      Promise.all([gw.api("/devices/" + d.id + "/live", { method: "POST" }), loadHls()]).then(function (got) {
        var v = got[0];
        box.setAttribute("data-ready-ms", String(Math.round(performance.now() - t0))); // the hub's share
        var video = gw.el("video", { class: "gw-live-video", muted: "", autoplay: "", playsinline: "", "data-device-id": d.id });
        video.muted = true;
        btn.replaceWith(video);
        var src = v.playlist.replace(/^\/api\/v1/, gw.cfg.api);
        var w = watching = { device: d.id, url: gw.cfg.api + v.url.replace(/^\/api\/v1/, ""), hls: null };
        if (window.Hls && window.Hls.isSupported()) {
          // no worker: the page's policy allows scripts from the hub only (no blob: workers)
          var hls = new window.Hls({ enableWorker: false, liveSyncDurationCount: 2, lowLatencyMode: false });
          w.hls = hls;
          hls.on(window.Hls.Events.ERROR, function (_e, data) {
            if (data.fatal) { note.textContent = gw.t("live_ended"); box.setAttribute("data-state", "error"); stopLive(); }
          });
          hls.loadSource(src);
          hls.attachMedia(video);
        } else {
          video.src = src; // a browser that plays HLS itself
        }
        video.addEventListener("playing", function () {
          var ms = Math.round(performance.now() - t0);
          box.setAttribute("data-state", "playing");
          box.setAttribute("data-first-frame-ms", String(ms));
          note.textContent = gw.t("live_playing");
        }, { once: true });
        video.play().catch(function () {});
      }).catch(function (e) {
        btn.disabled = false;
        note.textContent = gw.errorText(e);
        box.setAttribute("data-state", "error");
        box.setAttribute("data-code", e.code || "");
      });
    });
    return box;
  };
  window.addEventListener("pagehide", stopLive);

  var panel = null;
  function close() { stopLive(); if (panel) { panel.remove(); panel = null; } }
  /* open the panel for one device (any kind; cameras get the picture and health) */
  gw.cameraPanel = function (id, latlng) {
    if (latlng && gw.map) gw.map.panTo(latlng);
    gw.api("/devices/" + id + "?with_fov=false").then(function (d) {
      close();
      var camera = has(d.hfov_deg) || /camera|checkpoint/.test(d.kind);
      var closeBtn = gw.el("button", { type: "button", class: "gw-cp-close", "aria-label": "close", text: "×" });
      closeBtn.addEventListener("click", close);
      var status = gw.el("span", { class: "gw-cp-status " + d.status, text: gw.t(d.status) });
      panel = gw.el("aside", { class: "gw-cam-panel", id: "gw-cam-panel", "data-device-id": d.id, "aria-label": d.name || d.id }, [
        gw.el("header", {}, [gw.el("h2", { class: "gw-cp-name", text: d.name || d.id }), closeBtn]),
        gw.el("div", { class: "gw-sub gw-cp-id", text: d.id + " · " + d.kind + (d.sub_kind ? " / " + d.sub_kind : "") }),
        gw.el("div", { class: "gw-cp-meta" }, [status, gw.el("span", { class: "gw-sub", text: " · " + gw.t("last_seen") + " " + (d.last_seen ? gw.time(d.last_seen) : "–") })]),
      ]);
      if (camera) {
        panel.appendChild(gw.snapshotBox(d.id));
        if (gw.liveView) panel.appendChild(gw.liveView(d));
        panel.appendChild(healthSection(d.id));
      }
      panel.appendChild(presenceSection(d.id));
      if (camera) panel.appendChild(opticsSection(d));
      panel.appendChild(alarmsSection(d.id));
      document.body.appendChild(panel);
    }).catch(function (e) { gw.toast(gw.errorText(e)); });
  };
  gw.closeCameraPanel = close;
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") close(); });
})();
