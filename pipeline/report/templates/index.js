(function () {
  "use strict";
  var table = document.getElementById("cases");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var total = rows.length;
  var shown = document.getElementById("shown");
  var controls = {
    text: document.getElementById("f-text"),
    outcome: document.getElementById("f-outcome"),
    category: document.getElementById("f-category"),
    split: document.getElementById("f-split"),
    truth: document.getElementById("f-truth"),
    pred: document.getElementById("f-pred"),
    low: document.getElementById("f-low")
  };

  function matches(row) {
    var d = row.dataset;
    var text = controls.text.value.trim().toLowerCase();
    if (text && d.id.toLowerCase().indexOf(text) < 0) { return false; }
    if (controls.outcome.value && d.outcome !== controls.outcome.value) { return false; }
    if (controls.category.value && d.category !== controls.category.value) { return false; }
    if (controls.split.value && d.split !== controls.split.value) { return false; }
    var truth = controls.truth.value;
    if (truth === "__none__" && d.truth !== "") { return false; }
    if (truth && truth !== "__none__" && d.truth !== truth) { return false; }
    if (controls.pred.value && d.pred !== controls.pred.value) { return false; }
    if (controls.low.checked && d.low !== "1") { return false; }
    return true;
  }

  function applyFilters() {
    var n = 0;
    rows.forEach(function (row) {
      var ok = matches(row);
      row.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = n === total
      ? "Showing all " + total + " cases. Click a column heading to sort."
      : "Showing " + n + " of " + total + " cases (filtered).";
  }

  Object.keys(controls).forEach(function (key) {
    controls[key].addEventListener("input", applyFilters);
    controls[key].addEventListener("change", applyFilters);
  });
  document.getElementById("f-reset").addEventListener("click", function () {
    Object.keys(controls).forEach(function (key) {
      if (controls[key].type === "checkbox") { controls[key].checked = false; } else { controls[key].value = ""; }
    });
    applyFilters();
  });

  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function sortBy(th) {
    var key = th.dataset.key;
    var numeric = th.dataset.type === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    rows.sort(function (a, b) {
      var x = a.dataset[key], y = b.dataset[key], c;
      if (numeric) { c = parseFloat(x) - parseFloat(y); } else { c = x.localeCompare(y); }
      if (c === 0) { c = parseFloat(a.dataset.order) - parseFloat(b.dataset.order); }
      return dir * c;
    });
    rows.forEach(function (row) { tbody.appendChild(row); });
  }
  headers.forEach(function (th) {
    var button = th.querySelector("button");
    if (button) { button.addEventListener("click", function () { sortBy(th); }); }
  });
  applyFilters();
  document.body.setAttribute("data-ready", "1");
}());
