/* gridwatch auditor view: compliance choropleth by level, failing units with reasons, suggested points. */
(function () {
  "use strict";
  var gw = window.gw;

  function colour(pct) {
    if (pct === null || pct === undefined) return "#b9c0ca";
    if (pct >= 95) return "#1e9e4a";
    if (pct >= 80) return "#b8c93a";
    if (pct >= 50) return "#e39b1a";
    return "#d33a2c";
  }

  gw.views.audit = function (map, cfg) {
    var $ = function (id) { return document.getElementById(id); };
    if (!cfg.tileUrl) map.getContainer().style.background = "#eef1f4";
    var shapes = L.geoJSON(null, {
      style: function (f) {
        return { color: "#fff", weight: 0.8, fillColor: colour(f.properties.pct), fillOpacity: 0.75, className: "gw-choropleth" };
      },
      onEachFeature: function (f, layer) {
        var p = f.properties;
        layer.bindTooltip(gw.textBox(p.name + " · " + (p.pct === null ? "n/a" : p.pct + "%") + (p.failed_rules.length ? " · ✗ " + p.failed_rules.join(", ") : "")));
      },
    }).addTo(map);
    var suggestions = L.layerGroup().addTo(map);
    var focus = L.layerGroup().addTo(map);
    var job = null;

    function regionChoices() {
      var sel = $("gw-a-region");
      var mine = (gw.user && gw.user.regions && gw.user.regions.length) ? gw.user.regions.slice() : [];
      if (cfg.region && mine.indexOf(cfg.region) < 0) mine.unshift(cfg.region);
      var named = mine.length
        ? Promise.all(mine.map(function (code) {
            return gw.api("/regions/" + code).catch(function () { return { code: code, name: code }; });
          }))
        : gw.api("/regions?level=3&limit=200").then(function (page) { return page.items; });
      return named.then(function (regions) {
        sel.innerHTML = "";
        regions.forEach(function (r) { sel.appendChild(gw.el("option", { value: r.code, text: r.name + " " + r.code })); });
        if (cfg.region) sel.value = cfg.region;
        $("gw-a-run").disabled = !sel.value;
        sel.setAttribute("data-ready", "1");
        return sel.value;
      });
    }

    function status(text) { $("gw-a-status").textContent = text; }

    function showJob(j) {
      job = j;
      $("gw-a-status").setAttribute("data-job", j.id);
      $("gw-a-status").setAttribute("data-status", j.status);
      if (j.status !== "done") {
        status(j.status === "running" ? gw.t("running") : j.error || j.status);
        return;
      }
      status((j.region_name || j.region_code) + " · " + gw.time(j.finished_at) + " · run " + j.run_id);
      $("gw-a-downloads").classList.remove("gw-hidden");
      setDownloads();
      // rules
      var ruleSel = $("gw-a-rule");
      var current = ruleSel.value;
      ruleSel.innerHTML = "";
      ruleSel.appendChild(gw.el("option", { value: "", text: "∑ " + gw.t("compliance") }));
      j.summary.forEach(function (r) { ruleSel.appendChild(gw.el("option", { value: r.rule, text: r.rule })); });
      ruleSel.value = current;
      var table = $("gw-a-summary");
      table.innerHTML = "";
      table.appendChild(gw.el("tr", {}, [gw.el("th", { text: gw.t("rule") }), gw.el("th", { text: gw.t("passed") }), gw.el("th", { text: "%" }), gw.el("th", { text: "" })]));
      j.summary.forEach(function (r) {
        var pct = r.rate !== null && r.rate !== undefined ? (100 * r.rate).toFixed(1) : (r.pct_passed !== null ? r.pct_passed.toFixed(1) : "–");
        table.appendChild(gw.el("tr", { "data-rule": r.rule, title: r.title || r.rule, class: r.ok ? "" : "gw-row-fail", onclick: function () { $("gw-a-rule").value = r.rule; refresh(); } }, [
          gw.el("td", { text: r.rule }), gw.el("td", { text: r.passed + "/" + r.units }), gw.el("td", { text: pct }),
          gw.el("td", { text: r.ok ? "✓" : "✗", style: "color:" + (r.ok ? "#1e9e4a" : "#d33a2c") }),
        ]));
      });
      // failing units
      var rule = $("gw-a-rule").value;
      var fails = j.failures.filter(function (f) { return !rule || f.rule === rule; });
      $("gw-a-nfail").textContent = rule ? fails.length : j.failures_total;
      var ft = $("gw-a-failures");
      ft.innerHTML = "";
      ft.appendChild(gw.el("tr", {}, [gw.el("th", { text: gw.t("unit") }), gw.el("th", { text: gw.t("reason") })]));
      fails.slice(0, 300).forEach(function (f) {
        ft.appendChild(gw.el("tr", { class: "gw-row-fail gw-failure", onclick: function () {
          if (f.lat === null || f.lat === undefined) return;
          focus.clearLayers();
          L.circleMarker([f.lat, f.lon], { radius: 12, color: "#d33a2c", weight: 3, fill: false }).addTo(focus);
          map.setView([f.lat, f.lon], Math.max(map.getZoom(), 15));
        } }, [gw.el("td", { text: (f.name || f.unit_id) }), gw.el("td", { text: f.rule + ": " + (f.reason || "") })]));
      });
      // suggestions
      suggestions.clearLayers();
      var ol = $("gw-a-suggestions");
      ol.innerHTML = "";
      var cands = (j.suggestions && j.suggestions.candidates) || [];
      $("gw-a-nsug").textContent = cands.length;
      cands.slice(0, 200).forEach(function (c, i) {
        if (i < 40) {
          var icon = L.divIcon({ className: "gw-unit-icon patrol_car gw-suggestion-marker", html: gw.esc(c.rank), iconSize: [22, 16] });
          L.marker([c.lat, c.lon], { icon: icon, title: c.label }).bindTooltip(gw.textBox("#" + c.rank + " " + c.label + " — " + c.why)).addTo(suggestions);
        }
        ol.appendChild(gw.el("li", { class: "gw-suggestion", onclick: function () { map.setView([c.lat, c.lon], 17); } }, [gw.el("b", { text: c.label }), gw.el("div", { class: "gw-empty", text: c.why })]));
      });
      loadShapes();
    }

    function loadShapes() {
      if (!job || job.status !== "done") return;
      var q = "/audits/" + job.id + "/choropleth?level=" + $("gw-a-level").value;
      var rule = $("gw-a-rule").value;
      if (rule) q += "&rule=" + encodeURIComponent(rule);
      gw.api(q).then(function (fc) {
        shapes.clearLayers();
        shapes.addData(fc);
        var b = shapes.getBounds();
        if (b.isValid() && !loadShapes.fitted) { map.fitBounds(b); loadShapes.fitted = true; }
      }).catch(function (e) { gw.toast(e.message); });
    }
    function refresh() { if (job) showJob(job); }

    // Each ask (the latest audit of a region, a new run) starts a generation; an answer that
    // arrives after a newer ask is dropped, so a late answer about an earlier audit never
    // replaces the run the auditor just started (nor its polling).
    var generation = 0;
    function poll(id, gen) {
      return gw.api("/audits/" + id).then(function (j) {
        if (gen !== generation) return;
        showJob(j);
        if (j.status === "running") setTimeout(function () { poll(id, gen); }, 1000);
      });
    }
    function latest(region) {
      var gen = ++generation;
      return gw.api("/audits?region=" + region + "&status=done&limit=1").then(function (page) {
        if (gen !== generation) return;
        if (page.items.length) return poll(page.items[0].id, gen);
        status(gw.t("no_audit"));
      });
    }
    function setDownloads() {
      if (!job) return;
      ["html", "csv"].forEach(function (kind) {
        var a = $("gw-a-" + kind);
        a.href = cfg.api + "/audits/" + job.id + "/report." + kind; // the session cookie signs it
        a.setAttribute("download", "gridwatch-audit-" + job.region_code + "-" + job.id + "." + kind);
      });
    }
    $("gw-a-level").addEventListener("change", loadShapes);
    $("gw-a-rule").addEventListener("change", function () { refresh(); });
    $("gw-a-region").addEventListener("change", function () { loadShapes.fitted = false; latest($("gw-a-region").value); });
    $("gw-a-run").addEventListener("click", function () {
      var region = $("gw-a-region").value;
      var gen = ++generation;
      $("gw-a-run").disabled = true;
      $("gw-a-status").setAttribute("data-status", "running");
      $("gw-a-status").removeAttribute("data-job");
      status(gw.t("running"));
      gw.api("/audits", { method: "POST", body: { region: region } }).then(function (j) {
        if (gen !== generation) return;
        loadShapes.fitted = false;
        return poll(j.id, gen);
      }).catch(function (e) { status(e.message); }).then(function () { $("gw-a-run").disabled = false; });
    });
    $("gw-a-run").disabled = true;
    regionChoices().then(function (region) { if (region) latest(region); });
    gw.audit = { map: map, job: function () { return job; } };
  };
})();
