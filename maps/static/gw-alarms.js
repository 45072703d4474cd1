/* gridwatch alarm queue: paged and counted by the server, calm under bursts, trail and notes, bulk step, history. */
(function () {
  "use strict";
  var gw = window.gw;
  var PAGE = 100;
  var OPEN = { new: 1, acknowledged: 1, dispatched: 1 };
  var NEXT = {
    new: [["acknowledge", "acknowledge"]],
    acknowledged: [["dispatch", "dispatch"], ["resolve", "resolve"], ["false-alarm", "false_alarm"]],
    dispatched: [["resolve", "resolve"], ["false-alarm", "false_alarm"]],
  };
  function $(id) { return document.getElementById(id); }
  function has(v) { return v !== null && v !== undefined && v !== ""; }

  // ------------------------------------------------------------------ place names (cached per code)
  // The codes asked for in one task go to the hub in one request (a burst of alarms from a
  // hundred villages is one lookup, not two hundred).
  var regionCache = {}, regionWait = {}, regionTimer = null;
  function fetchRegions() {
    regionTimer = null;
    var wait = regionWait;
    var codes = Object.keys(wait);
    regionWait = {};
    for (var i = 0; i < codes.length; i += 200) {
      (function (part) {
        gw.api("/regions?limit=200&" + part.map(function (c) { return "code=" + c; }).join("&")).then(function (page) {
          var got = {};
          page.items.forEach(function (r) { got[r.code] = r; });
          part.forEach(function (c) { wait[c](got[c] || null); });
        }).catch(function () {
          part.forEach(function (c) { delete regionCache[c]; wait[c](null); }); // asked again next time
        });
      })(codes.slice(i, i + 200));
    }
  }
  gw.regionName = function (code) {
    if (!code) return Promise.resolve(null);
    if (!regionCache[code]) {
      regionCache[code] = new Promise(function (resolve) { regionWait[code] = resolve; });
      if (regionTimer === null) regionTimer = setTimeout(fetchRegions, 0);
    }
    return regionCache[code];
  };
  function township(code) { return code && code.length === 12 ? code.slice(0, 9) + "000" : null; }
  /* village and township of an alarm that came from the stream (which carries only the region code) */
  function fillPlaces(a) {
    if (has(a.village_name) || has(a.township_name) || !a.region_code) return Promise.resolve(false);
    var code = a.region_code;
    var town = township(code);
    return Promise.all([gw.regionName(code), town !== code ? gw.regionName(town) : Promise.resolve(null)]).then(function (r) {
      var own = r[0];
      if (!own) return false;
      if (own.level === 5) { a.village_name = own.name; a.township_name = r[1] ? r[1].name : null; }
      else if (own.level === 4) a.township_name = own.name;
      else a.region_name = own.name;
      return true;
    });
  }
  /* the faults a video-quality alarm names (detail.fault or detail.faults) */
  gw.alarmFaults = function (a) {
    var d = a.detail;
    if (!d || typeof d !== "object") return [];
    var list = Array.isArray(d.faults) ? d.faults : d.fault ? [d.fault] : [];
    return list.map(function (f) { return typeof f === "string" ? f : f && f.code; }).filter(function (f) { return typeof f === "string"; });
  };
  gw.placeText = function (a) {
    var parts = [a.village_name, a.township_name].filter(has);
    if (!parts.length && has(a.region_name)) parts.push(a.region_name);
    if (!parts.length && has(a.region_code)) parts.push(a.region_code);
    return parts.join(" · ");
  };

  // ------------------------------------------------------------------ one alarm's detail (queue and history)
  gw.alarmDetail = function (d, opts) {
    opts = opts || {};
    var box = gw.el("div", { class: "gw-a-detail", "data-detail-id": d.id });
    var facts = [
      [gw.t("place"), gw.placeText(d) + (d.region_code ? " (" + d.region_code + ")" : "")],
      [gw.t("kind"), gw.alarmKind(d.kind)],
      [gw.t("severity"), String(d.severity)],
      [gw.t("repeats"), String(d.repeat_count || 1)],
      [gw.t("device"), (d.device_name ? d.device_name + " · " : "") + d.device_id],
      d.from_hub ? [gw.t("from_hub"), d.from_hub] : null,
      [gw.t("raised_at"), gw.time(d.raised_at)],
      [gw.t("last_raised_at"), gw.time(d.last_raised_at)],
    ];
    facts = facts.filter(Boolean);
    var faults = gw.alarmFaults(d);
    if (faults.length) facts.push([gw.t("fault"), faults.map(function (f) { return gw.t("fault_" + f); }).join(", ")]);
    var table = gw.el("table", { class: "gw-table gw-facts" });
    facts.forEach(function (f) { table.appendChild(gw.el("tr", {}, [gw.el("th", { text: f[0] }), gw.el("td", { text: f[1] })])); });
    box.appendChild(table);
    var det = d.detail && typeof d.detail === "object" ? d.detail : {};
    if (faults.length && det.has_image && typeof det.health_ts === "number") {
      // the diagnosis' marked picture: the evidence for the faults this alarm names
      var at = new Date(det.health_ts * 1000 + 1).toISOString();
      box.appendChild(gw.el("img", { class: "gw-a-evidence", alt: "evidence", src: gw.cfg.api + "/devices/" + d.device_id + "/health/evidence?at=" + encodeURIComponent(at) }));
    }
    box.appendChild(gw.el("div", { class: "gw-sub", text: gw.t("trail") }));
    var trail = gw.el("ol", { class: "gw-trail" });
    (d.trail || []).forEach(function (s) {
      trail.appendChild(gw.el("li", { "data-step": s.state }, [
        gw.el("b", { text: gw.t("state_" + s.state) }),
        gw.el("span", { text: " " + s.actor + " · " + gw.time(s.at) }),
        s.note ? gw.el("div", { class: "gw-note", text: s.note }) : null,
      ]));
    });
    box.appendChild(trail);
    if (OPEN[d.state] && opts.note) {
      // the row's step buttons write this note to the trail with the step
      var note = gw.el("textarea", { class: "gw-a-note", maxlength: "2000", rows: "2", placeholder: gw.t("note_for_step") });
      note.addEventListener("click", function (ev) { ev.stopPropagation(); });
      box.appendChild(note);
    }
    if (opts.cameras) box.appendChild(opts.cameras);
    return box;
  };

  // ------------------------------------------------------------------ the queue
  gw.alarmQueue = function (cfg, hooks) {
    var list = $("gw-alarms");
    var banner = $("gw-new-banner");
    var moreBtn = $("gw-more");
    var rows = []; // loaded entries in server order
    var byId = {};
    var nextOffset = null;
    var generation = 0;
    var pending = {}; // id -> alarm waiting behind the "N new — show" banner
    var pointerIn = false;
    var selected = null;
    var filters = {};

    function readFilters() {
      var since = $("gw-f-since").value;
      filters = {
        state: $("gw-f-state").value || "open",
        severity_max: $("gw-f-sev").value,
        kind: $("gw-f-kind").value,
        region: $("gw-f-region").value || cfg.region || "",
        q: $("gw-q").value.trim(),
        since: since ? new Date(Date.now() - Number(since) * 3600e3).toISOString() : "",
        order: $("gw-f-order").value || "severity",
      };
    }
    function query(extra) {
      var q = ["state=" + encodeURIComponent(filters.state), "order=" + filters.order];
      ["severity_max", "kind", "region", "q", "since"].forEach(function (k) { if (filters[k]) q.push(k + "=" + encodeURIComponent(filters[k])); });
      return q.concat(extra || []).join("&");
    }
    var STATES_OF = { open: OPEN };
    function matches(a) {
      var states = STATES_OF[filters.state] || (function () { var o = {}; o[filters.state] = 1; return o; })();
      if (!states[a.state]) return false;
      if (filters.severity_max && a.severity > Number(filters.severity_max)) return false;
      if (filters.kind && a.kind !== filters.kind) return false;
      if (filters.region && (!a.region_code || a.region_code.indexOf(gw.regionPrefix(filters.region)) !== 0)) return false;
      if (filters.since && a.raised_at && new Date(a.raised_at) < new Date(filters.since)) return false;
      return true;
    }
    function before(a, b) { // true when a sorts before b in the current order
      var ta = Date.parse(a.raised_at), tb = Date.parse(b.raised_at);
      if (filters.order === "newest") return ta !== tb ? ta > tb : a.id > b.id;
      if (a.severity !== b.severity) return a.severity < b.severity;
      return ta !== tb ? ta < tb : a.id < b.id;
    }
    function calm() { return pointerIn || list.scrollTop > 4; }
    // A new row flashes for 4 s; at most MAX_FLASHING at once (each costs a style recalculation
    // and a repaint per frame: a burst of hundreds spent its frames flashing rows off screen)
    var MAX_FLASHING = 10, flashes = [];
    function mayFlash() {
      var now = Date.now();
      while (flashes.length && now - flashes[0] > 4000) flashes.shift();
      if (flashes.length >= MAX_FLASHING) return false;
      flashes.push(now);
      return true;
    }

    // --- rows
    function ageText(iso) {
      var s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
      if (s < 60) return Math.round(s) + " s";
      if (s < 3600) return Math.round(s / 60) + " min";
      if (s < 86400) return Math.round(s / 360) / 10 + " h";
      return Math.round(s / 8640) / 10 + " d";
    }
    function placeLine(a) { return gw.t("severity") + " " + a.severity + " · " + (gw.placeText(a) || "–"); }
    function render(entry) {
      var a = entry.data;
      var li = entry.li;
      li.className = "gw-alarm sev-" + a.severity + (selected === a.id ? " selected" : "") + (entry.flash ? " gw-flash" : "") + (matches(a) ? "" : " gw-a-gone");
      li.setAttribute("data-alarm-id", a.id);
      li.setAttribute("data-state", a.state);
      li.setAttribute("data-severity", a.severity);
      var pick = null;
      if (a.state === "new") {
        pick = gw.el("input", { type: "checkbox", class: "gw-a-pick", "aria-label": "select" });
        pick.checked = !!entry.picked;
        pick.addEventListener("click", function (ev) { ev.stopPropagation(); entry.picked = pick.checked; bulkCount(); });
      } else entry.picked = false;
      var buttons = gw.el("div", { class: "gw-a-actions" });
      (NEXT[a.state] || []).forEach(function (pair, i) {
        buttons.appendChild(gw.el("button", {
          type: "button", class: i === 0 ? "primary" : "", "data-action": pair[0], text: gw.t(pair[1]),
          onclick: function (ev) {
            ev.stopPropagation();
            var note = entry.detail ? entry.detail.querySelector(".gw-a-note") : null;
            act(a.id, pair[0], ev.target, note ? note.value : "");
          },
        }));
      });
      // the summary is rebuilt; the open detail (and a note being typed) stays as it is
      var top = gw.el("div", { class: "gw-a-top" }, [
        gw.el("div", { class: "gw-a-head" }, [
          pick,
          gw.el("span", { class: "gw-a-kind", text: gw.alarmKind(a.kind) + gw.alarmFaults(a).map(function (f) { return " · " + gw.t("fault_" + f); }).join("") }),
          a.repeat_count > 1 ? gw.el("span", { class: "gw-a-rep", title: gw.t("repeats"), text: "×" + a.repeat_count }) : null,
          a.from_hub ? gw.el("span", { class: "gw-a-hub", title: gw.t("from_hub"), text: a.from_hub }) : null,
          gw.el("span", { class: "gw-a-state " + a.state, text: gw.t("state_" + a.state) }),
        ]),
        gw.el("div", { class: "gw-a-meta gw-a-place", text: placeLine(a) }),
        gw.el("div", { class: "gw-a-meta" }, [
          gw.el("span", { text: (a.device_name ? a.device_name + " · " : "") + a.device_id + " · " + gw.time(a.raised_at) + " (" }),
          gw.el("span", { class: "gw-a-age", "data-at": a.raised_at, text: ageText(a.raised_at) }),
          ")",
        ]),
        buttons,
      ]);
      if (entry.top && entry.top.parentNode === li) li.replaceChild(top, entry.top);
      else li.insertBefore(top, li.firstChild);
      entry.top = top;
      Array.prototype.slice.call(li.querySelectorAll(":scope > .gw-a-detail")).forEach(function (el) { if (el !== entry.detail) el.remove(); });
      if (entry.detail && entry.detail.parentNode !== li) li.appendChild(entry.detail);
    }
    function makeEntry(a) {
      var entry = { data: a, li: gw.el("li", {}) };
      entry.li.addEventListener("click", function () { select(a.id); });
      byId[a.id] = entry;
      fillPlaces(a).then(function (changed) {
        // only the place line changes: the row is not rebuilt
        var line = changed && byId[a.id] === entry && entry.top ? entry.top.querySelector(".gw-a-place") : null;
        if (line) line.textContent = placeLine(a);
      });
      return entry;
    }
    function insertAt(entry, index) {
      rows.splice(index, 0, entry);
      list.insertBefore(entry.li, index + 1 < rows.length ? rows[index + 1].li : null);
    }
    function position(a) { // binary search in the loaded rows
      var lo = 0, hi = rows.length;
      while (lo < hi) {
        var mid = (lo + hi) >> 1;
        if (before(rows[mid].data, a)) lo = mid + 1; else hi = mid;
      }
      return lo;
    }
    function remove(entry) {
      var i = rows.indexOf(entry);
      if (i >= 0) rows.splice(i, 1);
      entry.li.remove();
      delete byId[entry.data.id];
      if (nextOffset !== null && nextOffset > 0) nextOffset -= 1;
      hooks.hidden(entry);
    }
    function empty() {
      $("gw-no-alarms").classList.toggle("gw-hidden", rows.length > 0);
      moreBtn.classList.toggle("gw-hidden", nextOffset === null);
    }

    // --- loading
    function load(reset, limit) {
      var gen = reset ? ++generation : generation;
      var offset = reset ? 0 : nextOffset;
      if (offset === null) return Promise.resolve();
      if (reset && !arrivedWhileLoading) arrivedWhileLoading = [];
      moreBtn.disabled = true;
      return gw.api("/alarms?" + query(["limit=" + (limit || PAGE), "offset=" + offset])).then(function (page) {
        if (gen !== generation) return;
        if (reset) {
          rows.forEach(function (e) { hooks.hidden(e); });
          rows = [];
          byId = {};
          list.textContent = "";
          pending = {};
          showBanner();
        }
        var frag = document.createDocumentFragment();
        page.items.forEach(function (a) {
          if (byId[a.id]) return;
          var entry = makeEntry(a);
          render(entry);
          rows.push(entry);
          frag.appendChild(entry.li);
          hooks.shown(entry);
        });
        list.appendChild(frag);
        nextOffset = page.next_offset;
        if (reset) { // what the stream brought while this page was asked for: shown or announced
          var again = arrivedWhileLoading || [];
          arrivedWhileLoading = null;
          var quiet = calm();
          again.forEach(function (a) { arrive(a, quiet); });
          // the alarm the operator has open stays open: its row was drawn anew, without details
          if (selected !== null && byId[selected]) refreshDetail(selected);
        }
        if (page.counts) $("gw-n-alarms").textContent = page.counts.total;
        list.setAttribute("data-loaded", rows.length);
        list.setAttribute("data-generation", gen);  // which load drew the list (tests, benches)
        list.setAttribute("data-order", filters.order);
        empty();
        bulkCount();
      }).catch(function (e) {
        if (reset && gen === generation) arrivedWhileLoading = null; // the old rows stay, with them
        gw.toast(gw.errorText(e));
      }).then(function () { moreBtn.disabled = false; });
    }
    function unfiltered() { // the list shows every open alarm: its count is the header's
      return filters.state === "open" && !filters.severity_max && !filters.kind && !filters.q && !filters.since &&
        (filters.region || "") === (cfg.region || "");
    }
    gw.alarmCounts = function () {
      var q = "/alarms?state=open&limit=1" + (cfg.region ? "&region=" + cfg.region : "");
      var both = unfiltered();
      return gw.api(q).then(function (page) {
        var c = page.counts;
        [1, 2, 3, 4].forEach(function (s) { $("gw-c-sev-" + s).textContent = c.severity[s] || 0; });
        ["new", "acknowledged", "dispatched"].forEach(function (s) { $("gw-c-" + s).textContent = c.state[s] || 0; });
        $("gw-n-open").textContent = c.total;
        $("gw-counts").setAttribute("data-total", c.total);
        if (both && unfiltered()) $("gw-n-alarms").textContent = c.total;
      }).catch(function () {});
    };
    // at most one round of counts a second, whatever the rate of arrivals; one request when the
    // list is unfiltered (its count is the header's total)
    var countsSoon = gw.throttle(function () {
      gw.alarmCounts();
      if (!unfiltered()) gw.api("/alarms?" + query(["limit=1"])).then(function (p) { $("gw-n-alarms").textContent = p.counts.total; }).catch(function () {});
    }, 1000);

    // --- the banner: new alarms wait here while the operator is working the list
    function showBanner() {
      // the banner's place is always kept (hidden, not removed), so showing it moves nothing
      var ids = Object.keys(pending);
      if (!ids.length) { banner.className = "gw-new-banner gw-quiet"; banner.setAttribute("data-n", 0); return; }
      var top = Math.min.apply(null, ids.map(function (k) { return pending[k].severity; }));
      banner.className = "gw-new-banner sev-" + top;
      banner.textContent = gw.t("n_new").replace("{n}", ids.length);
      banner.setAttribute("data-n", ids.length);
    }
    banner.addEventListener("click", function () {
      // show: reload what is loaded, in order (the operator asked for the list to change)
      load(true, Math.min(1000, Math.max(PAGE, rows.length)));
    });

    /* alarm.new events that arrive while a reset load is in flight: the reset replaces the rows
       they were put in, so they are applied again once the page lands (an alarm sorting past the
       page is then announced; before, it vanished without a word) */
    var arrivedWhileLoading = null;
    function arrive(a, quiet) { // alarm.new from the stream; quiet: the operator is working the list
      if (arrivedWhileLoading) arrivedWhileLoading.push(a);
      if (byId[a.id] || !matches(a)) return;
      // the alarm the operator has open is never sent behind the banner: it was clicked in a
      // list that a reset load then replaced (it arrived while that page was asked for)
      if ((quiet || filters.q) && a.id !== selected) {
        pending[a.id] = a;
        showBanner();
        return;
      }
      var i = position(a);
      if (i >= rows.length && nextOffset !== null) { // sorts past the loaded page: announce it
        pending[a.id] = a;
        showBanner();
        return;
      }
      var entry = makeEntry(a);
      entry.flash = mayFlash();
      render(entry);
      insertAt(entry, i);
      if (nextOffset !== null) nextOffset += 1;
      hooks.shown(entry);
    }
    /* what the stream brought since the last frame, in order: [["new" | "updated", alarm], ...];
       the list's layout is read once (before any change) and the counts asked for once */
    function batch(events) {
      var quiet = calm();
      events.forEach(function (ev) { if (ev[0] === "new") arrive(ev[1], quiet); else update(ev[1]); });
      empty();
      list.setAttribute("data-batches", Number(list.getAttribute("data-batches") || 0) + 1);
      countsSoon();
    }
    function update(a) { // alarm.updated, or an answer to our own step
      if (pending[a.id]) {
        Object.assign(pending[a.id], a);
        if (!matches(pending[a.id])) { delete pending[a.id]; showBanner(); }
      }
      var entry = byId[a.id];
      if (!entry) return;
      var was = entry.data.state;
      Object.assign(entry.data, a);
      entry.flash = false;
      render(entry);
      hooks.shown(entry);
      if (selected === a.id && was !== entry.data.state && !a.trail) refreshDetail(a.id);
    }
    function refreshDetail(id) {
      gw.api("/alarms/" + id).then(function (d) { if (selected === id) showDetail(d); }).catch(function () {});
    }
    function sweep() { // rows that left the filter go when the pointer is not on the list
      if (pointerIn) return;
      rows.filter(function (e) { return !matches(e.data) && e.data.id !== selected; }).forEach(remove);
      empty();
    }
    setInterval(sweep, 4000);
    setInterval(function () {
      list.querySelectorAll(".gw-a-age").forEach(function (el) { el.textContent = ageText(el.getAttribute("data-at")); });
    }, 30000);
    list.addEventListener("mouseenter", function () { pointerIn = true; });
    list.addEventListener("mouseleave", function () { pointerIn = false; sweep(); });
    list.addEventListener("scroll", function () {
      if (nextOffset !== null && list.scrollTop + list.clientHeight > list.scrollHeight - 200 && !moreBtn.disabled) load(false);
    });
    moreBtn.addEventListener("click", function () { load(false); });

    // --- steps
    function act(id, action, button, note) {
      if (button) button.disabled = true;
      var body = note && note.trim() ? { note: note.trim() } : {};
      return gw.api("/alarms/" + id + "/" + action, { method: "POST", body: body }).then(function (d) {
        update(d);
        if (selected === id) showDetail(d);
        countsSoon();
      }).catch(function (e) {
        if (button) button.disabled = false;
        gw.toast(gw.errorText(e));
      });
    }
    function showDetail(d) {
      var entry = byId[d.id];
      if (!entry) return;
      entry.detail = gw.alarmDetail(d, { note: true, cameras: hooks.cameras(d) });
      render(entry);
    }
    function select(id) {
      if (selected !== null && byId[selected] && selected !== id) {
        byId[selected].detail = null;
        render(byId[selected]);
      }
      selected = id;
      rows.forEach(function (e) { e.li.classList.toggle("selected", e.data.id === id); });
      return gw.api("/alarms/" + id).then(function (d) {
        if (selected !== id) return;
        update(d);
        showDetail(d);
        hooks.selected(d);
      }).catch(function (e) { gw.toast(gw.errorText(e)); });
    }

    // --- bulk acknowledge
    function picked() { return rows.filter(function (e) { return e.picked && e.data.state === "new"; }); }
    function bulkCount() {
      var n = picked().length;
      $("gw-bulk-n").textContent = n;
      $("gw-bulk-ack").disabled = n === 0;
    }
    $("gw-bulk-all").addEventListener("change", function (ev) {
      rows.forEach(function (e) { if (e.data.state === "new") { e.picked = ev.target.checked; render(e); } });
      bulkCount();
    });
    $("gw-bulk-ack").addEventListener("click", function () {
      var ids = picked().map(function (e) { return e.data.id; }).slice(0, 500);
      if (!ids.length) return;
      var note = $("gw-bulk-note").value.trim();
      var btn = $("gw-bulk-ack");
      btn.disabled = true;
      gw.api("/alarms/acknowledge", { method: "POST", body: note ? { ids: ids, note: note } : { ids: ids } }).then(function (out) {
        out.done.forEach(function (id) { if (byId[id]) { byId[id].picked = false; update({ id: id, state: "acknowledged" }); } });
        var msg = gw.t("bulk_done").replace("{n}", out.done.length);
        if (out.failed.length) msg += " · " + gw.t("bulk_failed").replace("{n}", out.failed.length) + ": " + gw.errorText({ code: out.failed[0].code, message: out.failed[0].reason });
        gw.toast(msg);
        $("gw-bulk-all").checked = false;
        $("gw-bulk-note").value = "";
        bulkCount();
        countsSoon();
      }).catch(function (e) { gw.toast(gw.errorText(e)); bulkCount(); });
    });

    // --- filters
    function refilter() { readFilters(); load(true); }
    ["gw-f-state", "gw-f-sev", "gw-f-kind", "gw-f-region", "gw-f-since", "gw-f-order"].forEach(function (id) { $(id).addEventListener("change", refilter); });
    $("gw-q").addEventListener("input", gw.debounce(refilter, 300));
    document.querySelectorAll("#gw-counts .gw-chip[data-sev]").forEach(function (chip) {
      chip.addEventListener("click", function () { $("gw-f-sev").value = chip.getAttribute("data-sev") === "4" ? "" : chip.getAttribute("data-sev"); refilter(); });
    });
    document.querySelectorAll("#gw-counts .gw-chip[data-state]").forEach(function (chip) {
      chip.addEventListener("click", function () { $("gw-f-state").value = chip.getAttribute("data-state"); refilter(); });
    });
    readFilters();

    gw.onLang.push(function () { rows.forEach(render); showBanner(); });
    return {
      start: function () { gw.alarmCounts(); return load(true); },
      batch: batch,
      arrive: function (a) { batch([["new", a]]); },
      update: function (a) { batch([["updated", a]]); },
      select: select,
      entries: function () { return rows; },
      byId: function (id) { return byId[id]; },
      pendingCount: function () { return Object.keys(pending).length; },
      act: act,
    };
  };

  // ------------------------------------------------------------------ filter options (kinds, townships)
  gw.fillFilterOptions = function (cfg) {
    var kinds = Object.keys(gw.ALARM_KINDS).sort();
    ["gw-f-kind", "gw-h-kind"].forEach(function (id) {
      var sel = $(id);
      if (!sel) return;
      kinds.forEach(function (k) { sel.appendChild(gw.el("option", { value: k, "data-kind": k, text: gw.alarmKind(k) })); });
    });
    gw.onLang.push(function () {
      document.querySelectorAll("option[data-kind]").forEach(function (o) { o.textContent = gw.alarmKind(o.getAttribute("data-kind")); });
    });
    var q = "/regions?level=4&limit=1000";
    return gw.api(q).then(function (page) {
      var prefix = cfg.region ? gw.regionPrefix(cfg.region) : "";
      page.items.filter(function (r) { return !prefix || r.code.indexOf(prefix) === 0; }).forEach(function (r) {
        ["gw-f-region", "gw-h-region"].forEach(function (id) {
          var sel = $(id);
          if (sel) sel.appendChild(gw.el("option", { value: r.code, text: r.name }));
        });
      });
    }).catch(function () {});
  };

  // ------------------------------------------------------------------ history of closed alarms
  gw.alarmHistory = function (cfg) {
    var body = $("gw-h-rows");
    var more = $("gw-h-more");
    var offset = null;
    var gen = 0;
    function params() {
      var p = ["state=" + encodeURIComponent($("gw-h-state").value || "closed"), "order=closed"];
      var sev = $("gw-h-sev").value, kind = $("gw-h-kind").value, region = $("gw-h-region").value || cfg.region || "";
      var q = $("gw-h-q").value.trim(), since = $("gw-h-since").value, until = $("gw-h-until").value;
      if (sev) p.push("severity_max=" + sev);
      if (kind) p.push("kind=" + encodeURIComponent(kind));
      if (region) p.push("region=" + region);
      if (q) p.push("q=" + encodeURIComponent(q));
      if (since) p.push("since=" + encodeURIComponent(new Date(since + "T00:00:00").toISOString()));
      if (until) p.push("until=" + encodeURIComponent(new Date(new Date(until + "T00:00:00").getTime() + 86400e3).toISOString()));
      return p;
    }
    function links() {
      var p = params().join("&"); // the session cookie signs the download in: no token in the URL
      $("gw-h-csv").setAttribute("href", gw.cfg.api + "/alarms/export?format=csv&" + p);
      $("gw-h-xlsx").setAttribute("href", gw.cfg.api + "/alarms/export?format=xlsx&" + p);
    }
    function row(a) {
      var tr = gw.el("tr", { class: "gw-h-row sev-" + a.severity, "data-alarm-id": a.id }, [
        gw.el("td", { text: gw.time(a.closed_at) }),
        gw.el("td", { text: gw.alarmKind(a.kind) + (a.repeat_count > 1 ? " ×" + a.repeat_count : "") }),
        gw.el("td", { text: gw.placeText(a) }),
        gw.el("td", { text: gw.t("state_" + a.state) + (a.closed_by ? " · " + a.closed_by : "") }),
      ]);
      tr.addEventListener("click", function () {
        gw.api("/alarms/" + a.id).then(function (d) {
          var box = $("gw-h-detail");
          box.textContent = "";
          box.appendChild(gw.alarmDetail(d, {}));
          box.scrollIntoView({ block: "nearest" });
        }).catch(function (e) { gw.toast(gw.errorText(e)); });
      });
      return tr;
    }
    function load(reset) {
      var g = reset ? ++gen : gen;
      var off = reset ? 0 : offset;
      if (off === null) return Promise.resolve();
      links();
      return gw.api("/alarms?" + params().concat(["limit=50", "offset=" + off]).join("&")).then(function (page) {
        if (g !== gen) return;
        if (reset) { body.textContent = ""; $("gw-h-detail").textContent = ""; }
        page.items.forEach(function (a) { body.appendChild(row(a)); });
        offset = page.next_offset;
        more.classList.toggle("gw-hidden", offset === null);
        $("gw-h-n").textContent = page.counts ? page.counts.total : page.items.length;
        body.setAttribute("data-loaded", body.children.length);
      }).catch(function (e) { gw.toast(gw.errorText(e)); });
    }
    ["gw-h-state", "gw-h-sev", "gw-h-kind", "gw-h-region", "gw-h-since", "gw-h-until"].forEach(function (id) { $(id).addEventListener("change", function () { load(true); }); });
    $("gw-h-q").addEventListener("input", gw.debounce(function () { load(true); }, 300));
    more.addEventListener("click", function () { load(false); });
    return { load: load };
  };

  // ------------------------------------------------------------------ tabs
  /* the side panel's tabs; onShow[name]() runs when a tab is shown */
  gw.sideTabs = function (onShow) {
    var tabs = {};
    ["queue", "history", "devices"].forEach(function (k) { if ($("gw-tab-" + k)) tabs[k] = $("gw-tab-" + k); });
    function show(name) {
      Object.keys(tabs).forEach(function (k) {
        tabs[k].classList.toggle("active", k === name);
        tabs[k].setAttribute("aria-selected", k === name ? "true" : "false");
        $("gw-" + k).classList.toggle("gw-hidden", k !== name);
      });
      if (onShow[name]) onShow[name]();
    }
    Object.keys(tabs).forEach(function (k) { tabs[k].addEventListener("click", function () { show(k); }); });
  };
})();
