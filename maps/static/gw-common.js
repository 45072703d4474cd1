/* gridwatch pages: sign-in, API calls, labels in Chinese and English, the live stream, tiles. */
(function () {
  "use strict";
  var gw = (window.gw = window.gw || {});
  gw.views = gw.views || {};

  // ------------------------------------------------------------------ labels (zh / en)
  var LABELS = {
    title_live: ["指挥中心实时地图", "Command centre live map"],
    title_install: ["设备安装登记", "Device installation"],
    title_audit: ["覆盖审计", "Coverage audit"],
    sign_in: ["登录", "Sign in"], sign_out: ["退出", "Sign out"],
    username: ["用户名", "User name"], password: ["密码", "Password"],
    bad_login: ["用户名或密码错误", "Wrong user name or password"],
    sound: ["声音", "Sound"], language: ["EN", "中文"],
    alarms: ["告警", "Alarms"], devices_in_view: ["视野内设备", "Devices in view"],
    total: ["总数", "Total"], online: ["在线", "Online"], offline: ["离线", "Offline"], unknown: ["未知", "Unknown"],
    no_alarms: ["暂无未处理告警", "No open alarms"],
    acknowledge: ["确认", "Acknowledge"], dispatch: ["派警", "Dispatch"], resolve: ["处置完毕", "Resolve"],
    false_alarm: ["误报", "False alarm"],
    state_new: ["新告警", "new"], state_acknowledged: ["已确认", "acknowledged"], state_dispatched: ["已派警", "dispatched"],
    state_resolved: ["已处置", "resolved"], state_false_alarm: ["误报", "false alarm"],
    severity: ["级别", "severity"], cameras_covering: ["覆盖该点的摄像机", "Cameras covering this spot"],
    nearest_camera: ["最近摄像机", "nearest camera"], no_cameras: ["附近无摄像机", "no camera nearby"],
    layer_context: ["行政区划 / 网格", "Regions / grids"], layer_devices: ["设备与覆盖范围", "Devices and coverage"],
    layer_alarms: ["告警", "Alarms"], layer_units: ["巡逻车 / 定位器", "Patrol units / trackers"],
    layer_highlight: ["关联摄像机", "Linked cameras"], layer_base: ["底图", "Base map"],
    stream_live: ["实时连接", "live"], stream_down: ["连接中断，重连中", "reconnecting"],
    legend: ["图例", "Legend"], cluster: ["聚合", "cluster"],
    kind: ["类型", "kind"], status: ["状态", "status"], last_seen: ["最后在线", "last seen"], region: ["区域", "region"],
    geofence_enter: ["进入电子围栏", "entered geofence"], geofence_exit: ["离开电子围栏", "left geofence"],
    // installer
    device_code: ["设备编码（20位国标编码）", "Device code (20-digit GB/T 28181)"],
    device_name: ["名称", "Name"], coords: ["坐标", "Coordinates"], crs: ["坐标系", "Coordinate system"],
    crs_gcj02: ["GCJ-02（高德/腾讯手机地图）", "GCJ-02 (AMap/Tencent phone maps)"],
    crs_wgs84: ["WGS 84（GPS）", "WGS 84 (GPS)"], crs_bd09: ["BD-09（百度地图）", "BD-09 (Baidu)"],
    lon: ["经度", "Longitude"], lat: ["纬度", "Latitude"], tap_map: ["或在地图上点击放置", "or tap the map to place it"],
    heading: ["朝向（度，正北为0）", "Heading (degrees from north)"], lens: ["镜头焦距 (mm)", "Lens focal length (mm)"],
    sensor: ["传感器尺寸", "Sensor format"], resolution: ["分辨率", "Resolution"], height: ["安装高度 (m)", "Mount height (m)"],
    preview: ["预览覆盖范围", "Preview coverage"], save: ["保存登记", "Save registration"],
    saved: ["已登记", "Registered"], waiting_heartbeat: ["等待首次心跳……", "Waiting for the first heartbeat…"],
    now_online: ["设备已上线", "Device is online"], rules_helped: ["有助于满足的规则", "Rules it helps satisfy"],
    findings: ["提示", "Notes"], mqtt_creds: ["设备接入凭据（MQTT）", "Device credentials (MQTT)"],
    new_device: ["登记下一台", "Register another"], pending: ["待认领设备", "Pending devices"],
    // audit
    level: ["层级", "Level"], run_audit: ["运行审计", "Run audit"], failing_units: ["不达标单元", "Failing units"],
    suggested: ["建议点位", "Suggested positions"], download_html: ["下载报告 (HTML)", "Download report (HTML)"],
    download_csv: ["下载数据 (CSV)", "Download data (CSV)"], compliance: ["达标率", "Compliance"],
    level_3: ["区县", "county"], level_4: ["乡镇/街道", "township"], level_5: ["行政村/社区", "village"],
    rule: ["规则", "rule"], reason: ["原因", "reason"], unit: ["单元", "unit"], passed: ["达标", "passed"],
    running: ["审计运行中……", "Audit running…"], no_audit: ["尚无审计结果", "No audit yet"],
  };
  var ALARM_KINDS = {
    intrusion: ["入侵", "intrusion"], infrared_intrusion: ["红外入侵", "infrared intrusion"], motion: ["移动侦测", "motion"],
    smoke: ["烟雾", "smoke"], panic: ["紧急求助", "panic button"], tamper: ["防拆", "tamper"], video_loss: ["视频丢失", "video loss"],
    door_forced: ["强行开门", "door forced"], door_held_open: ["门长时间未关", "door held open"],
    forced_passage: ["强行通过", "forced passage"], invalid_credential: ["无效凭证", "invalid credential"],
    low_battery: ["电量低", "low battery"], power_loss: ["断电", "power loss"], watchlist_hit: ["布控比中", "watch-list hit"],
    zone_alarm: ["防区报警", "zone alarm"], tripwire: ["越线", "tripwire"], zone: ["区域入侵", "zone entry"],
    geofence_intrusion: ["闯入电子围栏", "geofence intrusion"], geofence_exit: ["离开责任区", "left its beat"],
  };
  gw.lang = localStorage.getItem("gw.lang") || ((navigator.language || "zh").slice(0, 2) === "en" ? "en" : "zh");
  gw.t = function (key) {
    var pair = LABELS[key];
    if (!pair) return key;
    return gw.lang === "en" ? pair[1] : pair[0];
  };
  gw.alarmKind = function (kind) {
    var pair = ALARM_KINDS[kind];
    if (!pair) return kind;
    return gw.lang === "en" ? pair[1] : pair[0] + " " + pair[1];
  };
  gw.applyLabels = function (root) {
    (root || document).querySelectorAll("[data-i18n]").forEach(function (el) { el.textContent = gw.t(el.getAttribute("data-i18n")); });
    (root || document).querySelectorAll("[data-i18n-ph]").forEach(function (el) { el.placeholder = gw.t(el.getAttribute("data-i18n-ph")); });
    document.documentElement.lang = gw.lang === "en" ? "en" : "zh-CN";
  };
  gw.setLang = function (lang) {
    gw.lang = lang;
    localStorage.setItem("gw.lang", lang);
    gw.applyLabels();
    (gw.onLang || []).forEach(function (f) { f(lang); });
  };
  gw.onLang = [];

  // ------------------------------------------------------------------ helpers
  gw.el = function (tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "class") e.className = attrs[k];
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  };
  gw.time = function (iso) {
    if (!iso) return "";
    var d = new Date(iso);
    return d.toLocaleString(gw.lang === "en" ? "en-GB" : "zh-CN", { hour12: false });
  };
  gw.toast = function (text, ms) {
    var t = gw.el("div", { class: "gw-toast", text: text, role: "status" });
    document.body.appendChild(t);
    setTimeout(function () { t.remove(); }, ms || 4000);
  };
  gw.debounce = function (fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  };
  gw.colors = { online: "#1e9e4a", offline: "#d33a2c", unknown: "#8a94a3" };
  gw.sevColors = { 1: "#b0001e", 2: "#d33a2c", 3: "#e39b1a", 4: "#c8b400" };

  // ------------------------------------------------------------------ auth + API
  gw.token = localStorage.getItem("gw.token");
  gw.user = null;
  function ApiError(status, detail) {
    this.status = status;
    this.detail = detail;
    this.message = typeof detail === "string" ? detail : (detail || []).map(function (d) { return d.field + ": " + d.reason; }).join("; ");
  }
  gw.ApiError = ApiError;
  gw.api = function (path, opts) {
    opts = opts || {};
    var headers = { Accept: "application/json" };
    if (gw.token) headers.Authorization = "Bearer " + gw.token;
    var init = { method: opts.method || "GET", headers: headers };
    if (opts.raw !== undefined) {  // a file (an installation photo) sent as it is
      headers["Content-Type"] = opts.contentType;
      init.body = opts.raw;
    } else if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    return fetch(gw.cfg.api + path, init).then(function (r) {
      if (r.status === 401 && !opts.noLogin) gw.showLogin();
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
        if (!r.ok) throw new ApiError(r.status, data && data.detail !== undefined ? data.detail : data);
        return data;
      });
    });
  };
  gw.showLogin = function () {
    var box = document.getElementById("gw-login");
    if (box) box.classList.remove("gw-hidden");
    var u = document.getElementById("gw-login-user");
    if (u) u.focus();
  };
  function hideLogin() {
    var box = document.getElementById("gw-login");
    if (box) box.classList.add("gw-hidden");
  }
  function setUser(user) {
    gw.user = user;
    var el = document.getElementById("gw-user");
    if (el) el.textContent = user ? user.username + " · " + user.role : "";
  }
  function wireLogin(onReady) {
    var form = document.getElementById("gw-login-form");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var err = document.getElementById("gw-login-error");
      err.textContent = "";
      gw.api("/auth/token", {
        method: "POST",
        noLogin: true,
        body: { username: document.getElementById("gw-login-user").value, password: document.getElementById("gw-login-pass").value },
      }).then(function (out) {
        gw.token = out.access_token;
        localStorage.setItem("gw.token", gw.token);
        setUser(out.user);
        hideLogin();
        onReady();
      }).catch(function (e) { err.textContent = e.status === 401 ? gw.t("bad_login") : e.message; });
    });
    var out = document.getElementById("gw-logout");
    if (out) out.addEventListener("click", function () {
      localStorage.removeItem("gw.token");
      gw.token = null;
      location.reload();
    });
  }

  // ------------------------------------------------------------------ live stream (SSE)
  gw.stream = function (region, onEvent, onState) {
    var lastId = null;
    var source = null;
    var stopped = false;
    function open() {
      var q = ["access_token=" + encodeURIComponent(gw.token || "")];
      if (region) q.push("region=" + region);
      if (lastId !== null) q.push("since=" + lastId);
      source = new EventSource(gw.cfg.api + "/stream?" + q.join("&"));
      source.addEventListener("hello", function (ev) {
        var hello = JSON.parse(ev.data);
        if (lastId === null) lastId = hello.last_id;
        onState("live", hello);
      });
      var kinds = ["alarm.new", "alarm.updated", "device.status", "device.position", "geofence.enter", "geofence.exit",
        "x.device.registered", "x.device.changed", "x.device.retired"];
      kinds.forEach(function (kind) {
        source.addEventListener(kind, function (ev) {
          lastId = Number(ev.lastEventId) || lastId;
          onEvent(kind, JSON.parse(ev.data));
        });
      });
      source.onerror = function () {
        onState("down");
        if (source.readyState === EventSource.CLOSED && !stopped) {
          // the server refused (e.g. token expired) or closed: reopen, replaying from lastId
          setTimeout(function () { if (!stopped) open(); }, 1500);
        }
      };
    }
    open();
    return { close: function () { stopped = true; if (source) source.close(); }, lastId: function () { return lastId; } };
  };

  // ------------------------------------------------------------------ vector tiles
  // Leaflet 1.9 dropped DomEvent.fakeStop, which VectorGrid 1.3 still calls on canvas clicks.
  if (window.L && L.DomEvent && !L.DomEvent.fakeStop) {
    L.DomEvent.fakeStop = function (e) { if (e) e._stopped = true; return true; };
  }
  gw.tiles = function (layer, styles, options) {
    var url = gw.cfg.tiles + "/" + layer + "/{z}/{x}/{y}.pbf";
    var opts = Object.assign({
      rendererFactory: L.svg.tile,
      vectorTileLayerStyles: styles,
      interactive: false,
      maxZoom: 22,
      fetchOptions: { headers: { Authorization: "Bearer " + gw.token } },
    }, options || {});
    return L.vectorGrid.protobuf(url, opts);
  };

  // ------------------------------------------------------------------ sound
  var audio = null;
  gw.soundOn = localStorage.getItem("gw.sound") === "1";
  gw.beep = function () {
    if (!gw.soundOn) return;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.25].forEach(function (at) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.frequency.value = 880;
        gain.gain.value = 0.15;
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start(audio.currentTime + at);
        osc.stop(audio.currentTime + at + 0.15);
      });
    } catch (e) { /* no audio device: silent */ }
  };
  function wireBar() {
    var snd = document.getElementById("gw-sound");
    if (snd) {
      snd.setAttribute("aria-pressed", gw.soundOn ? "true" : "false");
      snd.addEventListener("click", function () {
        gw.soundOn = !gw.soundOn;
        localStorage.setItem("gw.sound", gw.soundOn ? "1" : "0");
        snd.setAttribute("aria-pressed", gw.soundOn ? "true" : "false");
        if (gw.soundOn) gw.beep();
      });
    }
    var lang = document.getElementById("gw-lang");
    if (lang) lang.addEventListener("click", function () { gw.setLang(gw.lang === "en" ? "zh" : "en"); });
  }

  // ------------------------------------------------------------------ start
  gw.start = function (map, cfg) {
    gw.cfg = cfg;
    gw.map = map;
    document.body.classList.add("gw-" + cfg.view);
    gw.applyLabels();
    wireBar();
    var started = false;
    function ready() {
      if (started) return;
      started = true;
      gw.views[cfg.view](map, cfg);
    }
    wireLogin(ready);
    if (!gw.token) { gw.showLogin(); return; }
    gw.api("/auth/me", { noLogin: true }).then(function (user) { setUser(user); ready(); })
      .catch(function () { localStorage.removeItem("gw.token"); gw.token = null; gw.showLogin(); });
  };
})();
