(function () {
  "use strict";
  var body = document.body;
  var opacity = document.getElementById("opacity");
  var opacityOut = document.getElementById("opacity-value");
  var showHeat = document.getElementById("show-heatmap");
  var showOutline = document.getElementById("show-outline");
  var zoom = document.getElementById("zoom");

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
  if (zoom) {
    zoom.addEventListener("click", function () {
      var on = body.classList.toggle("actual-size");
      zoom.setAttribute("aria-pressed", on ? "true" : "false");
      zoom.textContent = on ? "Fit to screen" : "Actual pixels (1:1)";
    });
  }
  function go(id) {
    var link = document.getElementById(id);
    if (link) { window.location.href = link.href; }
  }

  function decode(b64) {
    var bin = atob(b64), bytes = new Uint8Array(bin.length), i;
    for (i = 0; i < bin.length; i += 1) { bytes[i] = bin.charCodeAt(i); }
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser cannot unpack the embedded volume " +
        "(needs DecompressionStream: Chrome/Edge 80+, Firefox 113+, Safari 16.4+)"));
    }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }

  function startVolume(data) {
    var D = data.shape[0], H = data.shape[1], W = data.shape[2];
    var sp = data.spacing || [1, 1, 1];
    var lut = data.lut;
    var status = document.getElementById("viewer-status");
    var state = { pos: data.start.slice(), active: "axial", img: null, heat: null, mask: null };
    var names = ["axial", "coronal", "sagittal"];
    // Canonical volume[d, h, w]: d to Superior, h to Posterior, w to patient Left. Rows of the
    // coronal and sagittal views run from Superior (top) to Inferior, hence D - 1 - r.
    var views = {
      axial: { axis: 0, rows: H, cols: W, rs: sp[1], cs: sp[2],
        index: function (s, r, c) { return (s * H + r) * W + c; },
        point: function (r, c) { state.pos[1] = r; state.pos[2] = c; } },
      coronal: { axis: 1, rows: D, cols: W, rs: sp[0], cs: sp[2],
        index: function (s, r, c) { return ((D - 1 - r) * H + s) * W + c; },
        point: function (r, c) { state.pos[0] = D - 1 - r; state.pos[2] = c; } },
      sagittal: { axis: 2, rows: D, cols: H, rs: sp[0], cs: sp[1],
        index: function (s, r, c) { return ((D - 1 - r) * H + c) * W + s; },
        point: function (r, c) { state.pos[0] = D - 1 - r; state.pos[1] = c; } }
    };

    function setActive(name) {
      state.active = name;
      names.forEach(function (n) { views[n].el.classList.toggle("active", n === name); });
    }

    function render(name) {
      var v = views[name];
      if (!state.img) { return; }
      var s = state.pos[v.axis];
      var img = state.img, heat = state.heat, mask = state.mask;
      var base = v.buffers[0].data, hot = v.buffers[1].data, edge = v.buffers[2].data;
      var r, c, i, o, g, h, m;
      v.slider.value = String(s);
      v.label.textContent = "slice " + (s + 1) + " of " + v.count;
      for (r = 0; r < v.rows; r += 1) {
        for (c = 0; c < v.cols; c += 1) {
          i = v.index(s, r, c);
          o = (r * v.cols + c) * 4;
          g = img[i];
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
      Array.prototype.forEach.call(v.el.querySelectorAll(".stage3"), function (stage) {
        stage.style.aspectRatio = (v.cols * v.cs) + " / " + (v.rows * v.rs);
        stage.addEventListener("click", function (e) {
          var rect = stage.getBoundingClientRect();
          var c = Math.floor((e.clientX - rect.left) / rect.width * v.cols);
          var r = Math.floor((e.clientY - rect.top) / rect.height * v.rows);
          v.point(Math.min(v.rows - 1, Math.max(0, r)), Math.min(v.cols - 1, Math.max(0, c)));
          renderAll();
        });
      });
      v.el.addEventListener("click", function () { setActive(name); });
      v.el.addEventListener("wheel", function (e) {
        e.preventDefault();
        setActive(name);
        step(name, e.deltaY > 0 ? 1 : -1);
      }, { passive: false });
      v.slider.addEventListener("input", function () { setActive(name); setSlice(name, Number(v.slider.value)); });
    });

    function toPeak() { state.pos = data.start.slice(); renderAll(); }
    var peak = document.getElementById("to-peak");
    if (peak) { peak.addEventListener("click", toPeak); }

    var n = D * H * W;
    Promise.all([decode(data.image), data.heat ? decode(data.heat) : null, data.mask ? decode(data.mask) : null])
      .then(function (arrays) {
        arrays.forEach(function (a) {
          if (a && a.length !== n) { throw new Error("embedded volume has " + a.length + " voxels, expected " + n); }
        });
        state.img = arrays[0]; state.heat = arrays[1]; state.mask = arrays[2];
        renderAll();
        status.textContent = "Volume " + D + " × " + H + " × " + W + " voxels. Opened at the slices where the heatmap is strongest.";
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
          default: return false;
        }
      }
    };
  }

  var NATIVE_ON_SLIDER = { ArrowDown: 1, ArrowUp: 1, ArrowLeft: 1, ArrowRight: 1, PageDown: 1, PageUp: 1, Home: 1, End: 1 };
  var viewer = null;
  var volumeData = document.getElementById("volume-data");
  if (volumeData) {
    viewer = startVolume(JSON.parse(volumeData.textContent));
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
    else if (k === "z" && zoom) { zoom.click(); }
    else if (viewer && !(onSlider && NATIVE_ON_SLIDER[k]) && viewer.key(k)) { handled = true; }
    else { handled = false; }
    if (handled) { e.preventDefault(); }
  });
  applyLayers();
}());
