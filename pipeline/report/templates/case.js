(function () {
  "use strict";
  var body = document.body;
  var opacity = document.getElementById("opacity");
  var opacityOut = document.getElementById("opacity-value");
  var showHeat = document.getElementById("show-heatmap");
  var showOutline = document.getElementById("show-outline");
  var status = document.getElementById("viewer-status");

  function each(selector, fn) { Array.prototype.forEach.call(document.querySelectorAll(selector), fn); }

  function applyLayers() {
    var alpha = opacity ? Number(opacity.value) / 100 : 0;
    var heatOn = showHeat ? showHeat.checked : false;
    var outlineOn = showOutline ? showOutline.checked : false;
    each(".layer-heat", function (el) { el.style.opacity = heatOn ? String(alpha) : "0"; });
    each(".layer-outline", function (el) { el.style.visibility = outlineOn ? "visible" : "hidden"; });
    if (opacityOut) { opacityOut.textContent = Math.round(alpha * 100) + "%"; }
  }
  function stepOpacity(delta) {
    if (!opacity) { return; }
    opacity.value = String(Math.min(100, Math.max(0, Number(opacity.value) + delta)));
    applyLayers();
  }
  function toggle(box) {
    if (!box) { return; }
    box.checked = !box.checked;
    applyLayers();
  }
  [opacity, showHeat, showOutline].forEach(function (el) {
    if (el) { el.addEventListener("input", applyLayers); el.addEventListener("change", applyLayers); }
  });
  function go(id) {
    var link = document.getElementById(id);
    if (link) { window.location.href = link.href; }
  }

  // --- Embedded arrays: 8-bit greyscale PNGs decoded here (an <img> would hand a canvas 8 bits
  // at most; 16-bit levels come as two byte planes, high then low). Only what pack_png writes
  // is read: colour type 0, bit depth 8, no interlace. ---
  function inflate(bytes) {
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser cannot unpack the embedded image " +
        "(needs DecompressionStream: Chrome/Edge 80+, Firefox 113+, Safari 16.4+)"));
    }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }

  function decodePng(b64) {
    var bin = atob(b64), bytes = new Uint8Array(bin.length), i;
    for (i = 0; i < bin.length; i += 1) { bytes[i] = bin.charCodeAt(i); }
    var dv = new DataView(bytes.buffer), pos = 8, parts = [], total = 0, head = null;
    while (pos + 8 <= bytes.length) {
      var len = dv.getUint32(pos), type = String.fromCharCode(bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]);
      if (type === "IHDR") {
        head = { width: dv.getUint32(pos + 8), height: dv.getUint32(pos + 12), depth: bytes[pos + 16],
          colour: bytes[pos + 17], interlace: bytes[pos + 20] };
      } else if (type === "IDAT") {
        parts.push(bytes.subarray(pos + 8, pos + 8 + len)); total += len;
      } else if (type === "IEND") { break; }
      pos += 12 + len;
    }
    if (!head || head.colour !== 0 || head.interlace !== 0 || head.depth !== 8) {
      return Promise.reject(new Error("unsupported embedded image (expected an 8-bit greyscale PNG)"));
    }
    var joined = new Uint8Array(total), at = 0;
    parts.forEach(function (part) { joined.set(part, at); at += part.length; });
    return inflate(joined).then(function (raw) { return unfilter(raw, head); });
  }

  function unfilter(raw, head) {
    var bpp = 1, stride = head.width, rows = head.height;
    if (raw.length < rows * (stride + 1)) { throw new Error("embedded image is truncated"); }
    var out = new Uint8Array(rows * stride), y, x, src, dst, prev, a, b, c, p, pa, pb, pc, ft;
    for (y = 0; y < rows; y += 1) {
      src = y * (stride + 1) + 1; dst = y * stride; prev = dst - stride; ft = raw[src - 1];
      for (x = 0; x < stride; x += 1) {
        a = x >= bpp ? out[dst + x - bpp] : 0;
        b = y > 0 ? out[prev + x] : 0;
        if (ft === 0) { p = 0; }
        else if (ft === 1) { p = a; }
        else if (ft === 2) { p = b; }
        else if (ft === 3) { p = (a + b) >> 1; }
        else if (ft === 4) {
          c = x >= bpp && y > 0 ? out[prev + x - bpp] : 0;
          pa = Math.abs(b - c); pb = Math.abs(a - c); pc = Math.abs(a + b - 2 * c);
          p = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c);
        } else { throw new Error("embedded image has an unknown PNG filter " + ft); }
        out[dst + x] = (raw[src + x] + p) & 255;
      }
    }
    return { width: head.width, height: head.height, data: out };
  }

  function decodeAll(list, width, height) {
    return Promise.all(list.map(function (b64) {
      if (!b64) { return null; }
      return decodePng(b64).then(function (img) {
        var n = width * height, i, levels;
        if (img.width !== width || (img.height !== height && img.height !== 2 * height)) {
          throw new Error("embedded image is " + img.width + " × " + img.height + ", expected " + width + " × " + height);
        }
        if (img.height === height) { return img.data; }
        levels = new Uint16Array(n);
        for (i = 0; i < n; i += 1) { levels[i] = (img.data[i] << 8) | img.data[n + i]; }
        return levels;
      });
    }));
  }

  // --- Window/level: levels -> value (offset + scale * level) -> grey through a linear window.
  // onChange(lut) gets a fresh lookup table (level -> 0..255) after every change. ---
  function windowLevel(data, onChange) {
    var levelIn = document.getElementById("wl-level"), widthIn = document.getElementById("wl-width");
    var levelOut = document.getElementById("wl-level-value"), widthOut = document.getElementById("wl-width-value");
    var lo = data.offset, hi = data.offset + data.scale * data.max_level;
    var state = { center: data.window[0], width: data.window[1] };
    var centres = [lo, hi, state.center], widths = [2 * (hi - lo), state.width];
    data.presets.forEach(function (p) { centres.push(p[1]); widths.push(p[2]); });
    var minWidth = data.scale, maxWidth = Math.max.apply(null, widths);
    var lut = new Uint8Array(data.max_level + 1), pending = false;
    var digits = data.unit === "HU" ? 0 : 1;
    levelIn.min = String(Math.min.apply(null, centres)); levelIn.max = String(Math.max.apply(null, centres));
    widthIn.min = String(minWidth); widthIn.max = String(maxWidth);

    function text(v) { return v.toFixed(digits) + (data.unit === "grey level" ? "" : " " + data.unit); }
    function build() {
      var low = state.center - state.width / 2, k = data.scale / state.width, base = (data.offset - low) / state.width, q, g;
      for (q = 0; q <= data.max_level; q += 1) {
        g = base + q * k;
        lut[q] = g <= 0 ? 0 : (g >= 1 ? 255 : Math.round(g * 255));
      }
      levelIn.value = String(state.center); widthIn.value = String(state.width);
      levelOut.textContent = text(state.center); widthOut.textContent = text(state.width);
      pending = false;
      onChange(lut);
    }
    function set(center, width, now) {
      state.center = center;
      state.width = Math.min(maxWidth, Math.max(minWidth, width));
      if (now) { build(); } else if (!pending) { pending = true; window.requestAnimationFrame(build); }
    }
    levelIn.addEventListener("input", function () { set(Number(levelIn.value), state.width, true); });
    widthIn.addEventListener("input", function () { set(state.center, Number(widthIn.value), true); });
    Array.prototype.forEach.call(document.querySelectorAll(".wl-preset"), function (button) {
      button.addEventListener("click", function () { set(Number(button.dataset.center), Number(button.dataset.width), true); });
    });
    function reset() { set(data.window[0], data.window[1], true); }
    document.getElementById("wl-reset").addEventListener("click", reset);
    // Shift + drag: across changes the width, up/down the level (a full range per 400 px).
    function drag(el) {
      var from = null;
      el.addEventListener("pointerdown", function (e) {
        if (!e.shiftKey || e.button !== 0) { return; }
        from = { x: e.clientX, y: e.clientY, c: state.center, w: state.width };
        el.setPointerCapture(e.pointerId);
        e.preventDefault(); e.stopPropagation();
      });
      el.addEventListener("pointermove", function (e) {
        if (!from) { return; }
        var per = (hi - lo || 1) / 400;
        set(from.c + (e.clientY - from.y) * per, from.w + (e.clientX - from.x) * per, false);
        e.stopPropagation();
      });
      function end(e) { if (from) { from = null; e.stopPropagation(); } }
      el.addEventListener("pointerup", end);
      el.addEventListener("pointercancel", end);
      // A Shift-click must not also move the 3D crosshair.
      el.addEventListener("click", function (e) { if (e.shiftKey) { e.stopImmediatePropagation(); } }, true);
    }
    return { start: build, reset: reset, drag: drag, lut: function () { return lut; } };
  }

  // --- Per-label maps (multi-class/multi-label): the "Heatmap for" selector swaps the map shown;
  // each label's map is decoded once, on first use. onHeat(levels, entry) gets the new map. ---
  function labelHeats(data, width, height, onHeat) {
    var select = document.getElementById("heat-label"), said = document.getElementById("explains");
    var cache = {};
    if (!data.heats || !select) { return null; }
    function describe(entry) {
      if (!said) { return; }
      var called = data.predicted || [];
      said.textContent = "";
      var strong = document.createElement("strong");
      strong.textContent = "Heatmap: evidence for " + entry.label + ".";
      said.appendChild(strong);
      if (called.indexOf(entry.label) < 0) {
        said.appendChild(document.createTextNode(" The model's call was " + called.join(" and ") +
          ": the map shows what pushed the score towards " + entry.label + ", not evidence for the call."));
      }
    }
    function show(i) {
      var entry = data.heats[i];
      var levels = cache[i] ? Promise.resolve(cache[i]) :
        decodeAll([entry.png], width, height).then(function (arrays) { cache[i] = arrays[0]; return arrays[0]; });
      return levels.then(function (heat) {
        select.value = String(i);
        describe(entry);
        onHeat(heat, entry);
      });
    }
    select.addEventListener("change", function () {
      show(Number(select.value)).catch(function (err) { status.textContent = "The heatmap could not be displayed: " + err.message; });
    });
    return {
      first: function () { return show(data.heat_selected || 0); },
      next: function () { return show((Number(select.value) + 1) % data.heats.length); }
    };
  }

  function colourHeat(heat, lut, target) {
    var out = target.data, i, h, o;
    for (i = 0; i < heat.length; i += 1) {
      h = heat[i]; o = 4 * i;
      out[o] = lut[3 * h]; out[o + 1] = lut[3 * h + 1]; out[o + 2] = lut[3 * h + 2]; out[o + 3] = h;
    }
  }

  // --- 2D: one base image drawn into both panels, heat and outline as layers above it; the
  // panels zoom and pan together. Zoom is relative to fit-to-width; 1:1 is one image pixel per
  // device pixel. ---
  function startImage(data) {
    var H = data.shape[0], W = data.shape[1];
    var stages = Array.prototype.slice.call(document.querySelectorAll(".stage"));
    var layers = stages.map(function (st) { return st.querySelector(".zoom-layer"); });
    var bases = stages.map(function (st) { return st.querySelector(".c-base"); });
    var heatCanvas = document.getElementById("heat-2d"), outlineCanvas = document.getElementById("outline-2d");
    var zoomOut = document.getElementById("zoom-value"), oneButton = document.getElementById("zoom");
    var view = { z: 1, tx: 0, ty: 0 }, values = null, frame = null;

    function paint(lut) {
      if (!values) { return; }
      var ctx = bases[0].getContext("2d"), img = frame || (frame = ctx.createImageData(W, H));
      var px = new Uint32Array(img.data.buffer), i, g;
      for (i = 0; i < values.length; i += 1) { g = lut[values[i]]; px[i] = 0xff000000 | (g << 16) | (g << 8) | g; }
      ctx.putImageData(img, 0, 0);
      bases.slice(1).forEach(function (c) { c.getContext("2d").drawImage(bases[0], 0, 0); });
    }
    var wl = windowLevel(data, paint);

    function size() { return stages[0].getBoundingClientRect(); }
    function oneToOne() { return W / (window.devicePixelRatio || 1) / (size().width || W); }
    function limits() { var one = oneToOne(); return [Math.min(1, one), Math.max(8, 16 * one)]; }
    function apply() {
      var r = size(), w = r.width * view.z, h = r.height * view.z, one = oneToOne();
      view.tx = w <= r.width ? (r.width - w) / 2 : Math.min(0, Math.max(r.width - w, view.tx));
      view.ty = h <= r.height ? (r.height - h) / 2 : Math.min(0, Math.max(r.height - h, view.ty));
      layers.forEach(function (layer) {
        layer.style.transform = "translate(" + view.tx + "px, " + view.ty + "px) scale(" + view.z + ")";
      });
      var atOne = Math.abs(view.z - one) < 1e-6, perPixel = view.z / one;
      zoomOut.textContent = atOne ? "1:1 (actual pixels)" : (view.z === 1 ? "fit, " : "") +
        "1 image pixel = " + perPixel.toFixed(2) + " screen pixels";
      oneButton.setAttribute("aria-pressed", atOne ? "true" : "false");
      body.classList.toggle("zoomed-in", view.z > 1 && perPixel > 1.5);
    }
    function zoomAt(factor, cx, cy) {
      var lim = limits(), z = Math.min(lim[1], Math.max(lim[0], view.z * factor));
      view.tx = cx - (cx - view.tx) * z / view.z;
      view.ty = cy - (cy - view.ty) * z / view.z;
      view.z = z;
      apply();
    }
    function zoomCentre(factor) { var r = size(); zoomAt(factor, r.width / 2, r.height / 2); }
    function fit() { view.z = 1; view.tx = 0; view.ty = 0; apply(); }
    function toggleOne() {
      if (oneButton.getAttribute("aria-pressed") === "true") { fit(); } else { zoomCentre(oneToOne() / view.z); }
    }
    document.getElementById("zoom-in").addEventListener("click", function () { zoomCentre(1.25); });
    document.getElementById("zoom-out").addEventListener("click", function () { zoomCentre(1 / 1.25); });
    document.getElementById("zoom-fit").addEventListener("click", fit);
    oneButton.addEventListener("click", toggleOne);
    stages.forEach(function (stage) {
      var from = null;
      wl.drag(stage);
      stage.addEventListener("wheel", function (e) {
        e.preventDefault();
        var r = stage.getBoundingClientRect();
        zoomAt(e.deltaY < 0 ? 1.25 : 1 / 1.25, e.clientX - r.left, e.clientY - r.top);
      }, { passive: false });
      stage.addEventListener("pointerdown", function (e) {
        if (e.button !== 0 || e.shiftKey) { return; }
        from = { x: e.clientX, y: e.clientY, tx: view.tx, ty: view.ty };
        stage.setPointerCapture(e.pointerId);
        stage.classList.add("panning");
        e.preventDefault();
      });
      stage.addEventListener("pointermove", function (e) {
        if (!from) { return; }
        view.tx = from.tx + e.clientX - from.x; view.ty = from.ty + e.clientY - from.y;
        apply();
      });
      function end() { from = null; stage.classList.remove("panning"); }
      stage.addEventListener("pointerup", end);
      stage.addEventListener("pointercancel", end);
    });
    window.addEventListener("resize", apply);

    function drawHeat(heat) {
      var hctx = heatCanvas.getContext("2d"), himg = hctx.createImageData(W, H);
      colourHeat(heat, data.lut, himg);
      hctx.putImageData(himg, 0, 0);
    }
    var perLabel = heatCanvas ? labelHeats(data, W, H, drawHeat) : null;
    decodeAll([data.base, data.heat, data.outline], W, H).then(function (arrays) {
      values = arrays[0];
      if (arrays[1] && heatCanvas) { drawHeat(arrays[1]); }
      return (perLabel ? perLabel.first() : Promise.resolve()).then(function () { return arrays; });
    }).then(function (arrays) {
      if (arrays[2] && outlineCanvas) {
        var octx = outlineCanvas.getContext("2d"), oimg = octx.createImageData(W, H), i;
        for (i = 0; i < arrays[2].length; i += 1) {
          if (arrays[2][i]) { oimg.data.set([0, 255, 128, 255], 4 * i); }
        }
        octx.putImageData(oimg, 0, 0);
      }
      wl.start();
      apply();
      status.textContent = "Image " + W + " × " + H + " pixels.";
      body.setAttribute("data-ready", "1");
    }).catch(function (err) {
      status.textContent = "The image could not be displayed: " + err.message;
      body.setAttribute("data-ready", "error");
      console.error(err);
    });
    return {
      key: function (k) {
        switch (k) {
          case "z": toggleOne(); return true;
          case "+": case "=": zoomCentre(1.25); return true;
          case "-": zoomCentre(1 / 1.25); return true;
          case "0": fit(); return true;
          case "r": wl.reset(); return true;
          case "l": if (perLabel) { perLabel.next(); return true; } return false;
          default: return false;
        }
      }
    };
  }

  function startVolume(data) {
    var D = data.shape[0], H = data.shape[1], W = data.shape[2];
    var sp = data.spacing || [1, 1, 1];
    var lut = data.lut;
    var state = { pos: data.start.slice(), active: "axial", img: null, heat: null, mask: null };
    var names = ["axial", "coronal", "sagittal"];
    var zoomValue = document.getElementById("zoom3d-value");
    // Canonical volume[d, h, w]: d to Superior, h to Posterior, w to patient Left. Rows of the
    // coronal and sagittal views run from Superior (top) to Inferior, hence D - 1 - r.
    var views = {
      axial: { axis: 0, rows: H, cols: W, rs: sp[1], cs: sp[2],
        index: function (s, r, c) { return (s * H + r) * W + c; },
        box: function (f) { return [f[2][0], f[1][0], f[2][1], f[1][1]]; },
        point: function (r, c) { state.pos[1] = r; state.pos[2] = c; } },
      coronal: { axis: 1, rows: D, cols: W, rs: sp[0], cs: sp[2],
        index: function (s, r, c) { return ((D - 1 - r) * H + s) * W + c; },
        box: function (f) { return [f[2][0], D - f[0][1], f[2][1], D - f[0][0]]; },
        point: function (r, c) { state.pos[0] = D - 1 - r; state.pos[2] = c; } },
      sagittal: { axis: 2, rows: D, cols: H, rs: sp[0], cs: sp[1],
        index: function (s, r, c) { return ((D - 1 - r) * H + c) * W + s; },
        box: function (f) { return [f[1][0], D - f[0][1], f[1][1], D - f[0][0]]; },
        point: function (r, c) { state.pos[0] = D - 1 - r; state.pos[1] = c; } }
    };
    // Each view's [left, top, right, bottom] of the model's field of view, in pixels of that view.
    var fov = data.fov;
    var gray = null;
    var wl = windowLevel(data, function (table) { gray = table; renderAll(); });

    function setActive(name) {
      state.active = name;
      names.forEach(function (n) { views[n].el.classList.toggle("active", n === name); });
      showZoom();
    }

    // --- Zoom and pan, per view; the two panels of a view (plain, overlay) share it. The layer
    // holding a panel's canvases and its field-of-view box is sized and placed in % of its stage
    // (z = 1..8, offsets t in fractions of the stage, clamped so the image always covers the
    // stage): the box's dashed line stays one pixel wide, the orientation letters stay put. ---
    var ZOOM_MIN = 1, ZOOM_MAX = 8, DRAG_PX = 4;
    function showZoom() {
      var q = views[state.active].zoom;
      if (zoomValue && q) { zoomValue.textContent = state.active + " view: " + (q.z === 1 ? "fit" : q.z.toFixed(2) + "×"); }
    }
    function applyZoom(name) {
      var v = views[name], q = v.zoom;
      q.tx = Math.min(0, Math.max(1 - q.z, q.tx));
      q.ty = Math.min(0, Math.max(1 - q.z, q.ty));
      v.layers.forEach(function (layer) {
        layer.style.left = (100 * q.tx) + "%"; layer.style.top = (100 * q.ty) + "%";
        layer.style.width = (100 * q.z) + "%"; layer.style.height = (100 * q.z) + "%";
      });
      if (name === state.active) { showZoom(); }
    }
    // Zoom view `name` by `factor` keeping the point (fx, fy) of its stage (fractions) in place.
    function zoomAt(name, factor, fx, fy) {
      var q = views[name].zoom, z = Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, q.z * factor));
      if (Math.abs(z - 1) < 1e-9) { z = 1; }
      q.tx = fx - (fx - q.tx) * z / q.z;
      q.ty = fy - (fy - q.ty) * z / q.z;
      q.z = z;
      applyZoom(name);
    }
    function zoomCentre(name, factor) { zoomAt(name, factor, 0.5, 0.5); }
    function fitView(name) { var q = views[name].zoom; q.z = 1; q.tx = 0; q.ty = 0; applyZoom(name); }
    // A wheel notch (100 px) zooms by 1.25; a trackpad pinch (Ctrl + small deltas) by less.
    function wheelFactor(e) {
      var dy = e.deltaY * (e.deltaMode === 1 ? 40 : (e.deltaMode === 2 ? 800 : 1));
      return Math.pow(1.25, Math.max(-1, Math.min(1, -dy / 100)));
    }

    function render(name) {
      var v = views[name];
      if (!state.img || !gray) { return; }
      var s = state.pos[v.axis];
      var img = state.img, heat = state.heat, mask = state.mask, lvl = gray;
      var inside = !fov || (s >= fov[v.axis][0] && s < fov[v.axis][1]);
      var base = v.buffers[0].data, hot = v.buffers[1].data, edge = v.buffers[2].data;
      var r, c, i, o, g, h, m;
      v.slider.value = String(s);
      v.label.textContent = "slice " + (s + 1) + " of " + v.count + (inside ? "" : " (outside the model's field of view)");
      if (v.fovBox) { v.fovBox.hidden = !inside; }
      for (r = 0; r < v.rows; r += 1) {
        for (c = 0; c < v.cols; c += 1) {
          i = v.index(s, r, c);
          o = (r * v.cols + c) * 4;
          g = lvl[img[i]];
          base[o] = g; base[o + 1] = g; base[o + 2] = g; base[o + 3] = 255;
          if (heat) {
            h = heat[i];
            hot[o] = lut[3 * h]; hot[o + 1] = lut[3 * h + 1]; hot[o + 2] = lut[3 * h + 2]; hot[o + 3] = h;
          }
          if (mask) {
            m = mask[i] !== 0 && (r === 0 || c === 0 || r === v.rows - 1 || c === v.cols - 1 ||
              mask[v.index(s, r - 1, c)] === 0 || mask[v.index(s, r + 1, c)] === 0 ||
              mask[v.index(s, r, c - 1)] === 0 || mask[v.index(s, r, c + 1)] === 0);
            edge[o] = 0; edge[o + 1] = 255; edge[o + 2] = 128; edge[o + 3] = m ? 255 : 0;
          }
        }
      }
      v.contexts[0].putImageData(v.buffers[0], 0, 0);
      v.contexts[1].putImageData(v.buffers[0], 0, 0);
      v.contexts[2].putImageData(v.buffers[1], 0, 0);
      v.contexts[3].putImageData(v.buffers[2], 0, 0);
    }
    function renderAll() { names.forEach(render); }
    function setSlice(name, s) {
      var v = views[name];
      state.pos[v.axis] = Math.min(v.count - 1, Math.max(0, s));
      render(name);
    }
    function step(name, delta) { setSlice(name, state.pos[views[name].axis] + delta); }

    names.forEach(function (name) {
      var v = views[name];
      v.el = document.getElementById("view-" + name);
      v.slider = document.getElementById("slice-" + name);
      v.label = document.getElementById("label-" + name);
      v.count = data.shape[v.axis];
      v.contexts = [];
      Array.prototype.forEach.call(v.el.querySelectorAll("canvas"), function (canvas) {
        canvas.width = v.cols;
        canvas.height = v.rows;
        v.contexts.push(canvas.getContext("2d"));
      });
      v.buffers = [0, 1, 2].map(function () { return v.contexts[0].createImageData(v.cols, v.rows); });
      v.zoom = { z: 1, tx: 0, ty: 0 };
      v.layers = [];
      Array.prototype.forEach.call(v.el.querySelectorAll(".stage3"), function (stage) {
        var layer = stage.querySelector(".zoom-layer3"), from = null, dragged = false;
        v.layers.push(layer);
        stage.style.aspectRatio = (v.cols * v.cs) + " / " + (v.rows * v.rs);
        wl.drag(stage);
        if (fov && stage.getAttribute("data-role") === "overlay") {
          var b = v.box(fov), box = document.createElement("div");
          box.className = "fov";
          box.setAttribute("aria-hidden", "true");
          box.style.left = (100 * b[0] / v.cols) + "%"; box.style.top = (100 * b[1] / v.rows) + "%";
          box.style.width = (100 * (b[2] - b[0]) / v.cols) + "%"; box.style.height = (100 * (b[3] - b[1]) / v.rows) + "%";
          layer.appendChild(box);
          v.fovBox = box;
        }
        // Drag (more than DRAG_PX) pans both panels of the view; a click without moving still
        // moves the other views to the point clicked. Shift + drag is window/level (wl.drag).
        stage.addEventListener("pointerdown", function (e) {
          if (e.button !== 0 || e.shiftKey) { return; }
          from = { x: e.clientX, y: e.clientY, tx: v.zoom.tx, ty: v.zoom.ty, moved: false };
          dragged = false;
          stage.setPointerCapture(e.pointerId);
        });
        stage.addEventListener("pointermove", function (e) {
          if (!from) { return; }
          var dx = e.clientX - from.x, dy = e.clientY - from.y, r;
          if (!from.moved) {
            if (dx * dx + dy * dy <= DRAG_PX * DRAG_PX) { return; }
            from.moved = true;
            stage.classList.add("panning");
          }
          r = stage.getBoundingClientRect();
          v.zoom.tx = from.tx + dx / r.width; v.zoom.ty = from.ty + dy / r.height;
          applyZoom(name);
        });
        function end() {
          if (from) { dragged = from.moved; from = null; stage.classList.remove("panning"); }
        }
        stage.addEventListener("pointerup", end);
        stage.addEventListener("pointercancel", end);
        stage.addEventListener("click", function (e) {
          if (dragged) { dragged = false; return; }
          // The layer's box is the zoomed, panned image: map the click through it to a voxel.
          var rect = layer.getBoundingClientRect();
          var c = Math.floor((e.clientX - rect.left) / rect.width * v.cols);
          var r = Math.floor((e.clientY - rect.top) / rect.height * v.rows);
          v.point(Math.min(v.rows - 1, Math.max(0, r)), Math.min(v.cols - 1, Math.max(0, c)));
          renderAll();
        });
      });
      v.el.addEventListener("click", function () { setActive(name); });
      // Wheel: next/previous slice; Ctrl + wheel (and a trackpad pinch): zoom at the pointer.
      v.el.addEventListener("wheel", function (e) {
        e.preventDefault();
        setActive(name);
        if (e.ctrlKey) {
          var stage = e.target.closest ? e.target.closest(".stage3") : null, r, fx = 0.5, fy = 0.5;
          if (stage) {
            r = stage.getBoundingClientRect();
            fx = (e.clientX - r.left) / r.width; fy = (e.clientY - r.top) / r.height;
          }
          zoomAt(name, wheelFactor(e), fx, fy);
          return;
        }
        step(name, e.deltaY > 0 ? 1 : -1);
      }, { passive: false });
      v.slider.addEventListener("input", function () { setActive(name); setSlice(name, Number(v.slider.value)); });
    });

    names.forEach(fitView);
    function zoomButton(id, fn) {
      var button = document.getElementById(id);
      if (button) { button.addEventListener("click", function () { fn(state.active); }); }
    }
    zoomButton("zoom3d-in", function (a) { zoomCentre(a, 1.25); });
    zoomButton("zoom3d-out", function (a) { zoomCentre(a, 1 / 1.25); });
    zoomButton("zoom3d-fit", fitView);

    function toPeak() { state.pos = data.start.slice(); renderAll(); }
    var peak = document.getElementById("to-peak");
    if (peak) { peak.addEventListener("click", toPeak); }

    var perLabel = labelHeats(data, W, D * H, function (heat, entry) {
      state.heat = heat;
      if (entry.peak) { data.start = entry.peak.slice(); }
      renderAll();
    });
    decodeAll([data.base, data.heat, data.mask], W, D * H)
      .then(function (arrays) {
        state.img = arrays[0]; state.heat = arrays[1]; state.mask = arrays[2];
        if (perLabel) { return perLabel.first().then(function () { state.pos = data.start.slice(); return arrays; }); }
        return arrays;
      })
      .then(function () {
        wl.start();
        var p = data.start;
        status.textContent = "Volume " + D + " × " + H + " × " + W + " voxels. Opened at " +
          ((data.heat || data.heats) ? "the hottest voxel of the heatmap" : (data.mask ? "the centre of the annotated lesion" : "the middle of the volume")) +
          ": axial slice " + (p[0] + 1) + ", coronal slice " + (p[1] + 1) + ", sagittal slice " + (p[2] + 1) + ".";
        body.setAttribute("data-ready", "1");
      })
      .catch(function (err) {
        status.textContent = "The volume could not be displayed: " + err.message;
        body.setAttribute("data-ready", "error");
        console.error(err);
      });

    return {
      key: function (k) {
        var a = state.active;
        switch (k) {
          case "ArrowDown": case "ArrowRight": case "j": step(a, 1); return true;
          case "ArrowUp": case "ArrowLeft": case "k": step(a, -1); return true;
          case "PageDown": step(a, 10); return true;
          case "PageUp": step(a, -10); return true;
          case "Home": setSlice(a, 0); return true;
          case "End": setSlice(a, views[a].count - 1); return true;
          case "1": setActive("axial"); return true;
          case "2": setActive("coronal"); return true;
          case "3": setActive("sagittal"); return true;
          case "c": toPeak(); return true;
          case "r": wl.reset(); return true;
          case "l": if (perLabel) { perLabel.next(); return true; } return false;
          case "+": case "=": zoomCentre(a, 1.25); return true;
          case "-": zoomCentre(a, 1 / 1.25); return true;
          case "0": fitView(a); return true;
          default: return false;
        }
      }
    };
  }

  var NATIVE_ON_SLIDER = { ArrowDown: 1, ArrowUp: 1, ArrowLeft: 1, ArrowRight: 1, PageDown: 1, PageUp: 1, Home: 1, End: 1 };
  var viewer = null;
  var volumeData = document.getElementById("volume-data");
  var imageData = document.getElementById("image-data");
  if (volumeData) {
    viewer = startVolume(JSON.parse(volumeData.textContent));
  } else if (imageData) {
    viewer = startImage(JSON.parse(imageData.textContent));
  } else {
    body.setAttribute("data-ready", "1");
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var t = e.target, tag = t && t.tagName;
    if (tag === "SELECT" || tag === "TEXTAREA" || (tag === "INPUT" && t.type !== "range" && t.type !== "checkbox")) { return; }
    var onSlider = tag === "INPUT" && t.type === "range";
    var k = e.key, handled = true;
    if (k === "[") { stepOpacity(-10); }
    else if (k === "]") { stepOpacity(10); }
    else if (k === "h") { toggle(showHeat); }
    else if (k === "o") { toggle(showOutline); }
    else if (k === "n") { go("next-case"); }
    else if (k === "p") { go("prev-case"); }
    else if (k === "i") { go("to-index"); }
    else if (viewer && !(onSlider && NATIVE_ON_SLIDER[k]) && viewer.key(k)) { handled = true; }
    else { handled = false; }
    if (handled) { e.preventDefault(); }
  });
  applyLayers();
}());
