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

  // Times in the dashboard's time zone (Django's TIME_ZONE), as the tables beside say them.
  function timeFormat(zone, withSeconds) {
    var parts = { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone };
    if (withSeconds) { parts.second = "2-digit"; }
    return new Intl.DateTimeFormat("en-GB", parts);
  }

  function themeColour(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function options(chart, width) {
    var zone = chart.element.dataset.timeZone || "UTC";
    var text = themeColour("--bs-body-color");
    var grid = themeColour("--bs-border-color");
    var accent = themeColour("--ferry-accent");
    var axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 },
                 font: "12px system-ui, sans-serif", labelFont: "12px system-ui, sans-serif" };
    return {
      width: width, height: 220, legend: { show: false }, cursor: { drag: { x: false, y: false } },
      tzDate: function (seconds) { return uPlot.tzDate(new Date(seconds * 1000), zone); },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max * 1.15, 1)]; } } },
      series: [{}, { label: "Transfer rate", stroke: accent, width: 2, fill: accent + "22" }],
      axes: [
        Object.assign({}, axis, { label: "Time (" + zone + ")", values: function (u, splits) {
          var span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
          var format = timeFormat(zone, span < 600);
          var labels = splits.map(function (s) { return format.format(new Date(s * 1000)); });
          chart.element.dataset.xTicks = labels.join(" ");
          return labels;
        } }),
        Object.assign({}, axis, { label: "MB/s", size: 60, values: function (u, splits) {
          return splits.map(function (v) { return v >= 10 ? v.toFixed(0) : v.toFixed(1); });
        } })
      ]
    };
  }

  // A pause or a stop is a break in the line, not a slope from the last rate to the next.
  function seriesOf(data) {
    var times = [], rates = [], previous = null;
    data.points.forEach(function (point) {
      if (previous !== null && point[0] - previous > data.gap_seconds) {
        times.push(previous + data.gap_seconds / 2); rates.push(null);
      }
      times.push(point[0]); rates.push(point[1] / MB); previous = point[0];
    });
    return [times, rates];
  }

  function plot(chart, data) {
    var series = seriesOf(data);
    if (chart.plot) { chart.plot.setData(series); } else {
      var canvas = chart.element.querySelector(".ferry-chart-canvas");
      chart.plot = new uPlot(options(chart, canvas.clientWidth || 600), series, canvas);
    }
    chart.element.dataset.points = String(data.points.length);
    chart.element.dataset.gaps = String(series[1].filter(function (r) { return r === null; }).length);
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
    if (chart.plot) { chart.plot.destroy(); chart.plot = null; }
    if (!chart.data || !chart.data.points.length) { return; }
    plot(chart, chart.data);
    chart.element.dataset.theme = document.documentElement.getAttribute("data-bs-theme");
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
        if (chart.plot && data.points.length) { plot(chart, data); } else { draw(chart); }
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
