/* gridwatch installer field tools: where am I (GPS), which way it faces (compass), the label's code
   (camera or photo: BarcodeDetector, jsQR, then the ZXing reader), and a queue for registrations made
   without coverage. No UI of its own: gw-install.js wires these to the form. */
(function () {
  "use strict";
  var gw = (window.gw = window.gw || {});
  var field = (gw.field = {});

  // ------------------------------------------------------------------ position
  /* One fix from the phone: {lon, lat, accuracy_m}. Browsers give WGS 84 (GPS). */
  field.locate = function (timeoutMs) {
    return new Promise(function (resolve, reject) {
      if (!navigator.geolocation) { reject(new Error("no_geolocation")); return; }
      navigator.geolocation.getCurrentPosition(
        function (pos) {
          resolve({ lon: pos.coords.longitude, lat: pos.coords.latitude, accuracy_m: pos.coords.accuracy });
        },
        function (err) { reject(new Error(err.code === 1 ? "geo_denied" : "geo_failed")); },
        { enableHighAccuracy: true, timeout: timeoutMs || 15000, maximumAge: 0 }
      );
    });
  };

  // ------------------------------------------------------------------ heading
  /* Compass heading in degrees clockwise from north, from one orientation event, or null.
     iOS gives webkitCompassHeading; others give alpha of an absolute event (counter-clockwise). */
  field.headingOf = function (ev) {
    if (typeof ev.webkitCompassHeading === "number") return (ev.webkitCompassHeading + 360) % 360;
    if ((ev.absolute || ev.type === "deviceorientationabsolute") && typeof ev.alpha === "number") {
      var angle = screen.orientation && typeof screen.orientation.angle === "number" ? screen.orientation.angle : 0;
      return (360 - ev.alpha + angle + 360) % 360;
    }
    return null;
  };
  /* Follow the compass: onHeading(deg) on every reading; returns stop(). */
  field.watchHeading = function (onHeading) {
    function handler(ev) {
      var h = field.headingOf(ev);
      if (h !== null) onHeading(Math.round(h) % 360);
    }
    function start() {
      window.addEventListener("deviceorientationabsolute", handler);
      window.addEventListener("deviceorientation", handler);
    }
    // Browsers that ask first (iOS, recent Chromium) need the request inside the tap that
    // started this; the listeners go on at once and simply hear nothing until it is granted.
    var Doe = window.DeviceOrientationEvent;
    if (Doe && typeof Doe.requestPermission === "function") Doe.requestPermission().catch(function () {});
    start();
    return function stop() {
      window.removeEventListener("deviceorientationabsolute", handler);
      window.removeEventListener("deviceorientation", handler);
    };
  };

  // ------------------------------------------------------------------ label codes
  var CODE_RE = /(\d{20})/;
  /* The 20-digit GB/T 28181 code inside a decoded label text (labels often carry more). */
  field.codeIn = function (text) {
    var digits = String(text || "").replace(/[\s-]/g, "");
    var m = CODE_RE.exec(digits);
    return m ? m[1] : null;
  };
  function jsqrDecode(img) {
    /* The text of a QR code in the pixels (ImageData), or null (jsQR: it reads the clean QR
       labels that ZXing's reader misses, about 1 in 18 of 20-digit codes). */
    if (!window.jsQR) return null;
    var found = window.jsQR(img.data, img.width, img.height);
    return found && found.data ? found.data : null;
  }
  function zxingDecode(img) {
    var Z = window.ZXing;
    if (!Z) throw new Error("no_reader");
    var lum = new Uint8ClampedArray(img.width * img.height);
    for (var i = 0, j = 0; i < img.data.length; i += 4, j++) {
      lum[j] = (img.data[i] * 299 + img.data[i + 1] * 587 + img.data[i + 2] * 114) / 1000;
    }
    var source = new Z.RGBLuminanceSource(lum, img.width, img.height);
    var hints = new Map();
    hints.set(Z.DecodeHintType.TRY_HARDER, true);
    var reader = new Z.MultiFormatReader();
    reader.setHints(hints);
    return reader.decode(new Z.BinaryBitmap(new Z.HybridBinarizer(source))).getText();
  }
  function toCanvas(source, w, h) {
    var scale = Math.min(1, 1600 / Math.max(w, h));
    var c = document.createElement("canvas");
    c.width = Math.max(1, Math.round(w * scale));
    c.height = Math.max(1, Math.round(h * scale));
    c.getContext("2d").drawImage(source, 0, 0, c.width, c.height);
    return c;
  }
  /* Decode the text of a QR code or barcode in an image, video frame or canvas. */
  field.decodeLabel = function (source, w, h) {
    var canvas = toCanvas(source, w, h);
    // QR codes by jsQR, then anything (barcodes too) by ZXing; throws when neither reads it
    var readers = function () {
      var img = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
      return jsqrDecode(img) || zxingDecode(img);
    };
    if ("BarcodeDetector" in window) {
      var detector = new window.BarcodeDetector();
      return detector.detect(canvas).then(function (found) {
        return found.length ? found[0].rawValue : readers();
      }, readers);
    }
    return new Promise(function (resolve, reject) {
      try { resolve(readers()); } catch (e) { reject(e); }
    });
  };
  /* Decode a photo the installer took of the label (an <input type=file> File). */
  field.decodePhoto = function (file) {
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () {
        field.decodeLabel(img, img.naturalWidth, img.naturalHeight).then(resolve, reject)
          .finally(function () { URL.revokeObjectURL(url); });
      };
      img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("bad_image")); };
      img.src = url;
    });
  };
  /* Scan with the live camera into `video` until a code is found; returns {promise, stop}. */
  field.scanCamera = function (video) {
    var stream = null;
    var done = false;
    var stop = function () {
      done = true;
      if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
      video.srcObject = null;
    };
    var promise = navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        return video.play();
      })
      .then(function () {
        return new Promise(function (resolve, reject) {
          function tick() {
            if (done) { reject(new Error("stopped")); return; }
            if (!video.videoWidth) { setTimeout(tick, 200); return; }
            field.decodeLabel(video, video.videoWidth, video.videoHeight).then(function (text) {
              var code = field.codeIn(text);
              if (code) { stop(); resolve(code); } else setTimeout(tick, 250);
            }, function () { setTimeout(tick, 250); });
          }
          tick();
        });
      });
    return { promise: promise, stop: stop };
  };

  // ------------------------------------------------------------------ offline queue
  var QUEUE_KEY = "gw.install.queue";
  /* Registrations made while the phone had no connection, oldest first. */
  field.queue = {
    items: function () {
      try { return JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]"); } catch (e) { return []; }
    },
    save: function (items) { localStorage.setItem(QUEUE_KEY, JSON.stringify(items)); },
    add: function (body) {
      var items = field.queue.items().filter(function (q) { return q.body.id !== body.id; });
      items.push({ body: body, queued_at: new Date().toISOString(), state: "waiting", message: "" });
      field.queue.save(items);
    },
    /* Send every waiting item with send(body) -> Promise; a refusal (4xx) stays listed as a
       conflict with the server's reason; a network failure leaves it waiting. */
    flush: function (send) {
      var items = field.queue.items();
      var chain = Promise.resolve();
      items.forEach(function (item) {
        if (item.state !== "waiting") return;
        chain = chain.then(function () {
          return send(item.body).then(function () { item.state = "sent"; item.message = ""; },
            function (e) {
              if (e && e.status && e.status >= 400 && e.status < 500) { item.state = "conflict"; item.message = e.message || String(e.status); }
            });
        });
      });
      return chain.then(function () {
        field.queue.save(items.filter(function (q) { return q.state !== "sent"; }));
        return items;
      });
    },
    drop: function (id) {
      field.queue.save(field.queue.items().filter(function (q) { return q.body.id !== id; }));
    },
  };
  /* Whether an error means "no connection" (fetch never reached the hub); not navigator.onLine,
     which says offline on a network without internet while the hub answers. */
  field.isOffline = function (e) {
    return !!(e && !e.status && (e instanceof TypeError || e.name === "TypeError"));
  };
})();
