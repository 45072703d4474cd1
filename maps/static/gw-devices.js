/* gridwatch operator: find a device (code, name, village), the offline list, and the KPI strip for the view. */
(function () {
  "use strict";
  var gw = window.gw;
  function $(id) { return document.getElementById(id); }
  function has(v) { return v !== null && v !== undefined; }
  function pct(v) { return has(v) ? (Math.round(v * 1000) / 10) + "%" : "–"; }
  function bboxOf(map) {
    var b = map.getBounds();
    return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); }).join(",");
  }

  /* the Devices tab: search, filters, offline list with since-when; a row opens the device's panel */
  gw.deviceList = function (map, cfg) {
    var rows = $("gw-d-rows"), more = $("gw-d-more"), none = $("gw-d-none");
    var q = $("gw-d-q"), status = $("gw-d-status"), kind = $("gw-d-kind"), health = $("gw-d-health"), inView = $("gw-d-view");
    var nextOffset = null, generation = 0, shown = false, kindsLoaded = false;

    function query(offset) {
      var p = ["limit=50", "offset=" + offset];
      if (cfg.region) p.push("region=" + cfg.region);
      if (q.value.trim()) p.push("q=" + encodeURIComponent(q.value.trim()));
      if (status.value) p.push("status=" + status.value);
      if (status.value === "offline") p.push("order=offline_since");
      if (kind.value) p.push("kind=" + encodeURIComponent(kind.value));
      if (health.value) p.push("health=" + health.value);
      if (inView.checked) p.push("bbox=" + bboxOf(map));
      return "/devices?" + p.join("&");
    }
    function row(d) {
      var place = [d.village_name, d.township_name].filter(has).join(" · ") || d.region_code || "";
      var st = gw.t(d.status) + (d.offline_since ? " · " + gw.t("offline_since") + " " + gw.time(d.offline_since) : "");
      if (d.health === "faulty") st += " · ⚠ " + gw.t("health_faulty");
      var tr = gw.el("tr", { class: "gw-d-row " + d.status, "data-device-id": d.id, "data-status": d.status, "data-health": d.health || "", tabindex: "0" }, [
        gw.el("td", {}, [gw.el("b", { text: d.name || d.id }), gw.el("div", { class: "gw-sub", text: d.id + " · " + d.kind + (d.from_hub ? " · " + d.from_hub : "") })]),
        gw.el("td", { text: place }),
        gw.el("td", { class: "gw-d-status", text: st }),
      ]);
      function open() {
        var ll = has(d.lat) ? L.latLng(d.lat, d.lon) : null;
        if (ll) map.setView(ll, Math.max(map.getZoom(), 17));
        gw.cameraPanel(d.id, null);
      }
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", function (e) { if (e.key === "Enter") open(); });
      return tr;
    }
    function load(reset) {
      var gen = reset ? ++generation : generation;
      var offset = reset ? 0 : nextOffset;
      if (offset === null) return;
      gw.api(query(offset)).then(function (page) {
        if (gen !== generation) return;
        if (reset) rows.textContent = "";
        page.items.forEach(function (d) { rows.appendChild(row(d)); });
        nextOffset = page.next_offset;
        more.classList.toggle("gw-hidden", nextOffset === null);
        none.classList.toggle("gw-hidden", rows.children.length > 0);
        rows.setAttribute("data-loaded", String(rows.children.length));
      }).catch(function (e) { gw.toast(gw.errorText(e)); });
    }
    function loadKinds() {
      if (kindsLoaded) return;
      kindsLoaded = true;
      gw.api("/devices/summary" + (cfg.region ? "?region=" + cfg.region : "")).then(function (s) {
        Object.keys(s.by_kind).sort().forEach(function (k) { kind.appendChild(gw.el("option", { value: k, text: k + " (" + s.by_kind[k] + ")" })); });
      }).catch(function () {});
    }
    var reload = gw.debounce(function () { load(true); }, 300);
    q.addEventListener("input", reload);
    [status, kind, health, inView].forEach(function (el) { el.addEventListener("change", function () { load(true); }); });
    more.addEventListener("click", function () { load(false); });
    map.on("moveend", function () { if (shown && inView.checked) reload(); });
    return {
      show: function () { shown = true; loadKinds(); load(true); },
      load: load,
    };
  };

  /* the KPI strip: the audit's online / intact / networking rates and open alarms for the view */
  gw.kpiStrip = function (map, cfg) {
    var box = $("gw-kpi");
    function refresh() {
      var p = "?bbox=" + bboxOf(map) + (cfg.region ? "&region=" + cfg.region : "");
      gw.api("/devices/kpi" + p).then(function (k) {
        $("gw-k-online").textContent = pct(k.online_rate);
        $("gw-k-intact").textContent = pct(k.intact_rate);
        $("gw-k-networked").textContent = pct(k.networking_rate);
        $("gw-k-faulty").textContent = String(k.faulty);
        [1, 2, 3, 4].forEach(function (s) { $("gw-k-a" + s).textContent = String(k.open_alarms[String(s)] || 0); });
        box.setAttribute("data-cameras", String(k.cameras));
        box.setAttribute("data-online-rate", has(k.online_rate) ? String(k.online_rate) : "");
        box.setAttribute("data-faulty", String(k.faulty));
        box.setAttribute("data-sev1", String(k.open_alarms["1"] || 0));
      }).catch(function () {});
    }
    var soon = gw.debounce(refresh, 600);
    map.on("moveend", soon);
    setInterval(refresh, 60000);
    refresh();
    return { refresh: soon };
  };
})();
