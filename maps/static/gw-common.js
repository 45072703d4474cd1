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
    layer_places: ["地名", "Place names"],
    stream_live: ["实时连接", "live"], stream_down: ["连接中断，重连中", "reconnecting"],
    legend: ["图例", "Legend"], cluster: ["聚合", "cluster"],
    kind: ["类型", "kind"], status: ["状态", "status"], last_seen: ["最后在线", "last seen"], region: ["区域", "region"],
    geofence_enter: ["进入电子围栏", "entered geofence"], geofence_exit: ["离开电子围栏", "left geofence"],
    // alarm queue and history
    tab_queue: ["告警队列", "Queue"], tab_history: ["历史告警", "History"],
    sev_1: ["一级", "sev 1"], sev_2: ["二级", "sev 2"], sev_3: ["三级", "sev 3"], sev_4: ["四级", "sev 4"],
    open_alarms: ["未处理告警", "Open alarms"], matching: ["符合筛选", "matching"],
    search_alarms: ["编码 / 名称 / 村", "code / name / village"],
    all_open: ["全部未处理", "all open"], all_closed: ["全部已关闭", "all closed"],
    all_severities: ["全部级别", "all severities"], sev_max_1: ["仅一级", "severity 1 only"],
    sev_max_2: ["二级及以上", "severity 1-2"], sev_max_3: ["三级及以上", "severity 1-3"],
    all_kinds: ["全部类型", "all kinds"], all_regions: ["全部乡镇", "all townships"],
    any_time: ["任意时间", "any time"], last_1h: ["近1小时", "last hour"], last_24h: ["近24小时", "last 24 h"],
    last_7d: ["近7天", "last 7 days"], order_severity: ["按级别、时长", "severity, then age"],
    order_newest: ["最新在前", "newest first"], select_new: ["全选新告警", "select new"],
    bulk_note: ["统一备注", "one note for all"], more: ["加载更多", "more"],
    from: ["从", "from"], to: ["到", "to"], export_csv: ["导出 CSV", "CSV"], export_xlsx: ["导出 Excel", "Excel"],
    closed_at: ["关闭时间", "closed"], place: ["地点", "place"], outcome: ["结果", "outcome"],
    repeats: ["重复次数", "repeats"], device: ["设备", "device"], raised_at: ["发生时间", "raised"],
    from_hub: ["来自下级平台", "from hub"],
    last_raised_at: ["最近一次", "last raised"], fault: ["故障", "fault"], trail: ["处置记录", "trail"],
    note_for_step: ["处置备注（随下一步记录）", "note for the next step"],
    n_new: ["{n} 条新告警 — 显示", "{n} new — show"], bulk_done: ["已确认 {n} 条", "{n} acknowledged"],
    bulk_failed: ["{n} 条未处理", "{n} not changed"],
    no_covering_camera: ["没有摄像机覆盖该点", "no camera covers this spot"],
    cameras_nearest: ["最近的摄像机（未覆盖）", "Nearest cameras (not covering)"],
    faces_spot: ["朝向该点", "faces the spot"], faces_away: ["朝向别处", "faces away"],
    ptz_preset: ["调用预置位 {n}", "call preset {n}"],
    mute: ["静音", "Mute"],
    optics: ["视场/距离/朝向", "FOV / range / heading"], snapshot_at: ["抓拍于", "snapshot taken"],
    // device side panel (gw-camera.js)
    vqd_health: ["视频质量诊断", "Video quality"], not_checked: ["尚未诊断", "not diagnosed yet"], intact: ["完好", "intact"],
    checked_at: ["诊断于", "checked"], since: ["始于", "since"], online_24h: ["近24小时在线", "Online, last 24 h"],
    now: ["现在", "now"], never_online_24h: ["近24小时未上线", "not online in the last 24 h"],
    optics_title: ["镜头与视场", "Optics"], focal_length: ["焦距", "focal length"], fov: ["水平视场角", "horizontal FOV"],
    range: ["有效距离", "range"], linked_alarms: ["关联告警", "Linked alarms"], no_linked_alarms: ["无关联告警", "no linked alarms"],
    rel_own: ["本设备", "own"], rel_covers: ["覆盖", "covers"], rel_nearest: ["邻近", "nearest"],
    live_view: ["实时视频", "Live view"], watch_live: ["观看实时视频", "Watch live"], no_stream: ["未登记取流地址", "no stream URL registered"],
    live_starting: ["正在连接摄像机……", "connecting to the camera…"], live_playing: ["实时播放中", "playing live"],
    live_ended: ["实时视频已中断", "the live view stopped"],
    // devices tab and KPI strip (gw-devices.js)
    tab_devices: ["设备", "Devices"], search_devices: ["编码 / 名称 / 村", "code / name / village"],
    all_statuses: ["全部状态", "any status"], offline_list: ["离线设备（最近在前）", "offline (latest first)"],
    any_health: ["全部诊断", "any health"], health_faulty: ["有故障", "with a fault"], in_view_only: ["仅视野内", "in view only"],
    no_devices: ["没有符合条件的设备", "no matching devices"], offline_since: ["离线始于", "offline since"],
    kpi_online: ["在线率(24h)", "online (24 h)"], kpi_intact: ["完好率", "intact"], kpi_networked: ["联网率", "networked"],
    kpi_faulty: ["故障摄像机", "faulty cameras"], kpi_alarms: ["视野内告警(1/2/3/4级)", "alarms in view (sev 1/2/3/4)"],
    // server errors by their stable code (api/errors.py)
    err_bad_request: ["请求无效", "bad request"], err_not_authenticated: ["未登录或登录已过期", "not signed in (or the session expired)"],
    err_forbidden: ["无权执行此操作", "not allowed for your role or region"], err_not_found: ["不存在", "not found"],
    err_method_not_allowed: ["不支持此操作", "operation not allowed here"], err_conflict: ["与当前状态冲突", "conflicts with the current state"],
    err_too_large: ["内容过大", "too large"], err_unsupported_media_type: ["格式不支持", "unsupported format"],
    err_invalid_input: ["输入有误", "invalid input"], err_invalid_json: ["请求不是有效的 JSON", "the request is not valid JSON"],
    err_too_many_requests: ["请求过于频繁，请稍后再试", "too many requests, try again shortly"],
    err_unavailable: ["服务暂不可用", "service unavailable"], err_database_unavailable: ["数据库暂不可用，请稍后重试", "the database is not reachable; try again in a few seconds"],
    err_error: ["出错了", "something went wrong"],
    err_alarm_not_found: ["告警不存在", "this alarm does not exist"],
    err_device_not_found: ["设备未登记", "this device is not registered"], err_no_snapshot: ["该摄像机尚无抓拍图", "no snapshot from this camera yet"],
    err_snapshot_unreadable: ["抓拍图无法读取", "the snapshot cannot be read"],
    err_no_evidence: ["该诊断无证据图", "no diagnosis picture for this camera"],
    err_no_stream: ["该摄像机未登记取流地址", "this camera has no stream URL"], err_live_busy: ["同时观看的摄像机已达上限，请先关闭一路", "too many cameras are being watched; close one first"],
    err_live_disabled: ["本平台未开启实时视频", "live view is turned off on this hub"], err_live_unavailable: ["平台未安装 FFmpeg", "FFmpeg is not installed on the hub"],
    err_no_picture: ["摄像机未及时送出画面", "the camera sent no picture in time"], err_live_ended: ["实时视频已结束，请重新打开", "this live view has ended; start it again"],
    err_bad_stream_url: ["取流地址不是 rtsp://", "the stream URL is not rtsp://"],
    err_alarm_outside_region: ["该告警不在您负责的区域", "this alarm is outside your regions"],
    err_alarm_bad_transition: ["告警当前状态不允许此操作（可能已被他人处理）", "the alarm's state does not allow this step (someone may have handled it)"],
    err_alarm_elsewhere: ["该告警属于下级平台，请单独处理（将发送至该平台）", "this alarm belongs to a county hub: act on it alone (it is sent there)"],
    err_alarm_upstream_unreachable: ["该告警属于下级平台，当前无法发送到该平台", "this alarm belongs to a county hub, which cannot be reached now"],
    // video-quality faults (vision/faults.py)
    fault_signal_loss: ["信号丢失（黑屏/蓝屏）", "signal loss"], fault_frozen: ["画面冻结", "frozen picture"],
    fault_occlusion: ["遮挡", "occlusion"], fault_blur: ["模糊/失焦", "blur"], fault_too_dark: ["过暗", "too dark"],
    fault_too_bright: ["过亮", "too bright"], fault_colour_cast: ["偏色", "colour cast"], fault_snow_noise: ["雪花噪声", "snow noise"],
    fault_stripes: ["条纹干扰", "stripes"], fault_scene_change: ["场景变化（移位）", "scene change"],
    fault_shake: ["抖动", "shake"], fault_ptz_drift: ["云台失控", "PTZ drift"],
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
    video_quality: ["视频质量故障", "video quality fault"], device_flooding: ["设备消息泛滥", "device flooding"],
    zone_intrusion: ["区域入侵", "zone intrusion"], tripwire_crossing: ["越线", "tripwire crossing"], loitering: ["徘徊逗留", "loitering"],
  };
  gw.lang = localStorage.getItem("gw.lang") || ((navigator.language || "zh").slice(0, 2) === "en" ? "en" : "zh");
  gw.t = function (key) {
    var pair = LABELS[key];
    if (!pair) return key;
    return gw.lang === "en" ? pair[1] : pair[0];
  };
  gw.ALARM_KINDS = ALARM_KINDS;
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
  // one formatter per language: Date.toLocaleString with options builds a new one on every call
  // (a good share of a row's cost when alarms arrive by the hundred)
  var TIME_FORMATS = {};
  gw.time = function (iso) {
    if (!iso) return "";
    var f = TIME_FORMATS[gw.lang];
    if (!f) {
      f = TIME_FORMATS[gw.lang] = new Intl.DateTimeFormat(gw.lang === "en" ? "en-GB" : "zh-CN", {
        year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric", hour12: false,
      });
    }
    return f.format(new Date(iso));
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
  gw.throttle = function (fn, ms) {
    var last = 0, timer = null;
    return function () {
      var wait = last + ms - Date.now();
      if (timer) return;
      timer = setTimeout(function () { timer = null; last = Date.now(); fn(); }, Math.max(0, wait));
    };
  };
  /* push(item): fn(items) runs once per animation frame with everything pushed since; a timer
     stands in when no frame is drawn (a tab in the background), so nothing waits for long */
  gw.frameBatch = function (fn, maxWaitMs) {
    var items = [], frame = null, timer = null;
    function flush() {
      if (frame !== null) cancelAnimationFrame(frame);
      clearTimeout(timer);
      frame = timer = null;
      var batch = items;
      items = [];
      if (batch.length) fn(batch);
    }
    return function (item) {
      items.push(item);
      if (frame === null && timer === null) {
        frame = requestAnimationFrame(flush);
        timer = setTimeout(flush, maxWaitMs || 250);
      }
    };
  };
  /* the significant prefix of a 12-digit division code (as api/scope.py region_prefix) */
  gw.regionPrefix = function (code) {
    if (/^\d{2}0{10}$/.test(code)) return code.slice(0, 2);
    if (/^\d{4}0{8}$/.test(code)) return code.slice(0, 4);
    if (/^\d{6}0{6}$/.test(code)) return code.slice(0, 6);
    if (/^\d{9}000$/.test(code)) return code.slice(0, 9);
    return code;
  };
  gw.colors = { online: "#1e9e4a", offline: "#d33a2c", unknown: "#8a94a3" };
  gw.sevColors = { 1: "#b0001e", 2: "#d33a2c", 3: "#e39b1a", 4: "#c8b400" };

  // ------------------------------------------------------------------ auth + API
  // The session token lives in an HttpOnly cookie no script can read (POST /auth/session);
  // requests that change something echo the session's CSRF token as X-CSRF-Token.
  localStorage.removeItem("gw.token"); // pages before 2026-12 kept a bearer token here
  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }
  gw.csrf = function () { return cookie("gw_csrf"); };
  gw.user = null;
  function ApiError(status, detail, code) {
    this.status = status;
    this.detail = detail;
    this.code = code || null;
    this.message = typeof detail === "string" ? detail : (detail || []).map(function (d) { return d.field + ": " + d.reason; }).join("; ");
  }
  gw.ApiError = ApiError;
  /* an error for people: the stable code translated when we know it, else the server's reason */
  gw.errorText = function (e) {
    if (!e) return "";
    if (e.code && LABELS["err_" + e.code]) return gw.t("err_" + e.code);
    if (e.status && LABELS["err_http_" + e.status] && !e.message) return gw.t("err_http_" + e.status);
    return e.message || String(e);
  };
  gw.api = function (path, opts) {
    opts = opts || {};
    var headers = { Accept: "application/json" };
    var init = { method: opts.method || "GET", headers: headers, credentials: "same-origin" };
    if (init.method !== "GET" && gw.csrf()) headers["X-CSRF-Token"] = gw.csrf();
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
        if (!r.ok) throw new ApiError(r.status, data && data.detail !== undefined ? data.detail : data, data && data.code);
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
      gw.api("/auth/session", {
        method: "POST",
        noLogin: true,
        body: { username: document.getElementById("gw-login-user").value, password: document.getElementById("gw-login-pass").value },
      }).then(function (out) {
        setUser(out.user);
        hideLogin();
        onReady();
      }).catch(function (e) { err.textContent = e.status === 401 ? gw.t("bad_login") : e.message; });
    });
    var out = document.getElementById("gw-logout");
    if (out) out.addEventListener("click", function () {
      gw.api("/auth/session", { method: "DELETE", noLogin: true }).catch(function () {})
        .then(function () { location.reload(); });
    });
  }

  // ------------------------------------------------------------------ live stream (SSE)
  gw.stream = function (region, onEvent, onState) {
    var lastId = null;
    var source = null;
    var stopped = false;
    function open() {
      var q = []; // the session cookie authenticates the stream: no token in the URL
      if (region) q.push("region=" + region);
      if (lastId !== null) q.push("since=" + lastId);
      source = new EventSource(gw.cfg.api + "/stream" + (q.length ? "?" + q.join("&") : ""));
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
      fetchOptions: { credentials: "same-origin" },
    }, options || {});
    return L.vectorGrid.protobuf(url, opts);
  };

  // ------------------------------------------------------------------ alerts: a sound per severity, notifications
  var audio = null;
  gw.soundOn = localStorage.getItem("gw.sound") === "1";
  // severity -> [tones (Hz), seconds between repeats]: the most severe is highest, fastest and longest
  var SOUNDS = { 1: [[1320, 990, 1320, 990], 1.5], 2: [[880, 880], 3], 3: [[660], 6], 4: [[440], 12] };
  gw.play = function (severity) {
    var tones = (SOUNDS[severity] || SOUNDS[4])[0];
    gw.lastSound = { severity: severity, at: Date.now() };
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      tones.forEach(function (hz, i) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.frequency.value = hz;
        osc.type = severity === 1 ? "square" : "sine";
        gain.gain.value = severity === 1 ? 0.12 : 0.15;
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start(audio.currentTime + i * 0.2);
        osc.stop(audio.currentTime + i * 0.2 + 0.14);
      });
    } catch (e) { /* no audio device: silent */ }
  };
  gw.beep = function () { if (gw.soundOn) gw.play(2); };
  var ringing = {}; // alarm id -> severity, until acknowledged or muted
  var ringTimer = null;
  function ringTop() {
    var sevs = Object.keys(ringing).map(function (k) { return ringing[k]; });
    return sevs.length ? Math.min.apply(null, sevs) : null;
  }
  function ringUi() {
    var n = Object.keys(ringing).length;
    var mute = document.getElementById("gw-mute");
    if (mute) {
      mute.classList.toggle("gw-hidden", n === 0);
      mute.setAttribute("data-ringing", n);
      var label = mute.querySelector("span");
      if (label) label.textContent = gw.t("mute") + " (" + n + ")";
    }
  }
  function ring() {
    clearTimeout(ringTimer);
    ringTimer = null;
    var top = ringTop();
    ringUi();
    if (top === null || !gw.soundOn) return;
    gw.play(top);
    ringTimer = setTimeout(ring, SOUNDS[top][1] * 1000);
  }
  gw.ringing = function () { return Object.assign({}, ringing); };
  gw.alert = function (a) {
    if (a.state && a.state !== "new") return;
    if (gw.soundOn) {
      var wasTop = ringTop();
      ringing[a.id] = a.severity;
      if (wasTop === null || a.severity < wasTop) ring(); else ringUi();
    }
    if (a.severity <= 2 && document.hidden && window.Notification && Notification.permission === "granted") {
      try {
        var n = new Notification(gw.t("severity") + " " + a.severity + " · " + gw.alarmKind(a.kind), {
          body: (a.device_name || a.device_id || "") + (a.region_code ? " · " + a.region_code : ""),
          tag: "gw-alarm-" + a.id,
          requireInteraction: a.severity === 1,
        });
        n.onclick = function () { window.focus(); if (gw.live) gw.live.select(a.id); n.close(); };
        gw.notified = (gw.notified || 0) + 1;
      } catch (e) { /* notifications refused by the browser */ }
    }
  };
  gw.alertHandled = function (a) {
    if (ringing[a.id] !== undefined && a.state !== "new") {
      delete ringing[a.id];
      if (ringTop() === null) ring(); else ringUi();
    }
  };
  gw.mute = function () { ringing = {}; ring(); };
  function wireBar() {
    var snd = document.getElementById("gw-sound");
    if (snd) {
      snd.setAttribute("aria-pressed", gw.soundOn ? "true" : "false");
      snd.addEventListener("click", function () {
        gw.soundOn = !gw.soundOn;
        localStorage.setItem("gw.sound", gw.soundOn ? "1" : "0");
        snd.setAttribute("aria-pressed", gw.soundOn ? "true" : "false");
        if (gw.soundOn) gw.play(3); else gw.mute();
        // alerts while the tab is in the background: ask once, on the operator's own click
        if (gw.soundOn && window.Notification && Notification.permission === "default") Notification.requestPermission();
      });
    }
    var mute = document.getElementById("gw-mute");
    if (mute) mute.addEventListener("click", gw.mute);
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
    if (!gw.csrf()) { gw.showLogin(); return; } // no session cookie pair: not signed in
    gw.api("/auth/me", { noLogin: true }).then(function (user) { setUser(user); ready(); })
      .catch(function () { gw.showLogin(); });
  };
})();
