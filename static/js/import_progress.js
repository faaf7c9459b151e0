// The import page's progress bar: polls the job's status until it ends,
// then reloads the page to show the report. A file, not inline script: the
// site's Content-Security-Policy allows no inline script.
(function () {
  var box = document.getElementById("import-progress");
  if (!box || box.dataset.finished === "1") { return; }
  var bar = document.getElementById("import-bar");
  function poll() {
    fetch(box.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (job) {
        bar.style.width = job.percent + "%";
        bar.textContent = job.percent + "%";
        bar.parentNode.setAttribute("aria-valuenow", job.percent);
        document.getElementById("import-status").textContent = job.status_label;
        document.getElementById("import-phase").textContent = job.phase_label;
        document.getElementById("import-rows").textContent = job.processed + " / " + job.total;
        if (job.finished) { window.location.reload(); } else { setTimeout(poll, 1500); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
})();
