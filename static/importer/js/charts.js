// Transfer-rate charts (uPlot): a real time axis in UTC, rates in MB/s, colours from the
// theme. Each .ferry-chart fetches its points from data-chart-url, and again every few
// seconds while data-live is set (the session is not finished) and the tab is visible.
(function () {
  "use strict";
  var POLL_MS = 5000;
  var MB = 1e6;
  var UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];
  var charts = [];

  // As importer.ui.human_bytes, so the words match the server's.
  function humanRate(value) {
    if (!value) { return "—"; }
    var size = value, unit = 0;
    while (size >= 1000 && unit < UNITS.length - 1) { size /= 1000; unit += 1; }
    var shown = unit === 0 || size >= 100 ? size.toFixed(0) : size.toFixed(1);
    return shown + " " + UNITS[unit] + "/s";
  }

  function pad(number) { return (number < 10 ? "0" : "") + number; }

  function timeLabel(seconds, withSeconds) {
    var date = new Date(seconds * 1000);
    var text = pad(date.getUTCHours()) + ":" + pad(date.getUTCMinutes());
    return withSeconds ? text + ":" + pad(date.getUTCSeconds()) : text;
  }

  function themeColour(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function options(chart, width) {
    var text = themeColour("--bs-body-color");
    var grid = themeColour("--bs-border-color");
    var accent = themeColour("--ferry-accent");
    var axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 },
                 font: "12px system-ui, sans-serif", labelFont: "12px system-ui, sans-serif" };
    return {
      width: width, height: 220, legend: { show: false }, cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max * 1.15, 1)]; } } },
      series: [{}, { label: "Transfer rate", stroke: accent, width: 2, fill: accent + "22",
                     points: { show: false } }],
      axes: [
        Object.assign({}, axis, { label: "Time (UTC)", values: function (u, splits) {
          var span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
          var labels = splits.map(function (s) { return timeLabel(s, span < 600); });
          chart.element.dataset.xTicks = labels.join(" ");
          return labels;
        } }),
        Object.assign({}, axis, { label: "MB/s", size: 60, values: function (u, splits) {
          return splits.map(function (v) { return v >= 10 ? v.toFixed(0) : v.toFixed(1); });
        } })
      ]
    };
  }

  function seriesOf(points) {
    return [points.map(function (p) { return p[0]; }),
            points.map(function (p) { return p[1] / MB; })];
  }

  function showFigures(chart, data) {
    var box = chart.element.parentElement;
    var figures = { latest: humanRate(data.latest), average: humanRate(data.average),
                    peak: humanRate(data.peak), count: String(data.points.length) };
    Object.keys(figures).forEach(function (name) {
      var element = box.querySelector("[data-figure='" + name + "']");
      if (element && element.textContent !== figures[name]) { element.textContent = figures[name]; }
    });
    chart.element.querySelector(".ferry-chart-empty").classList.toggle("d-none", data.points.length > 0);
  }

  function draw(chart) {
    var canvas = chart.element.querySelector(".ferry-chart-canvas");
    if (chart.plot) { chart.plot.destroy(); chart.plot = null; }
    if (!chart.data || !chart.data.points.length) { return; }
    chart.plot = new uPlot(options(chart, canvas.clientWidth || 600), seriesOf(chart.data.points), canvas);
    chart.element.dataset.points = String(chart.data.points.length);
  }

  function load(chart) {
    if (chart.loading) { return; }
    chart.loading = true;
    fetch(chart.element.dataset.chartUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        chart.loading = false;
        if (!data) { return; }
        var first = !chart.data;
        chart.data = data;
        showFigures(chart, data);
        if (chart.plot && data.points.length) {
          chart.plot.setData(seriesOf(data.points));
          chart.element.dataset.points = String(data.points.length);
        } else { draw(chart); }
        if (first) { chart.element.dataset.ready = "true"; }
        if (!data.live) { chart.element.removeAttribute("data-live"); }
      })
      .catch(function () { chart.loading = false; });
  }

  document.querySelectorAll(".ferry-chart[data-chart-url]").forEach(function (element) {
    var chart = { element: element, plot: null, data: null, loading: false };
    charts.push(chart);
    load(chart);
  });
  if (!charts.length) { return; }

  setInterval(function () {
    if (document.visibilityState !== "visible") { return; }
    charts.forEach(function (chart) { if (chart.element.dataset.live === "true") { load(chart); } });
  }, POLL_MS);
  // Colours come from the theme: redraw when the operator switches it.
  new MutationObserver(function () { charts.forEach(draw); })
    .observe(document.documentElement, { attributes: true, attributeFilter: ["data-bs-theme"] });
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () {
      charts.forEach(function (chart) {
        var canvas = chart.element.querySelector(".ferry-chart-canvas");
        if (chart.plot) { chart.plot.setSize({ width: canvas.clientWidth, height: 220 }); }
      });
    }, 150);
  });
})();
