// Draw a digit, send the canvas to /api/predict while drawing (at most every 150 ms), show the answer.
(() => {
  "use strict";
  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const $ = (id) => document.getElementById(id);
  const THROTTLE_MS = 150;
  let names = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
  let drawing = false, last = null, hasInk = false;
  let timer = null, inFlight = false, again = false, uploaded = null, generation = 0;

  function reset() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    hasInk = false;
    uploaded = null;
    generation++;
    $("hint").classList.remove("hidden");
    $("prediction").textContent = "–";
    $("prediction").removeAttribute("data-prediction");
    $("confidence").innerHTML = "&nbsp;";
    $("preview").removeAttribute("src");
    status("");
    renderBars(null);
  }

  function status(text, isError) {
    $("status").textContent = text;
    $("status").classList.toggle("error", !!isError);
  }

  function renderBars(probs) {
    const bars = $("bars");
    if (!bars.children.length) {
      names.forEach((name) => {
        const row = document.createElement("div");
        row.className = "bar-row";
        row.innerHTML = '<span class="name"></span><div class="track"><div class="fill"></div></div><span class="pct"></span>';
        row.querySelector(".name").textContent = name;
        bars.appendChild(row);
      });
    }
    const top = probs ? probs.indexOf(Math.max(...probs)) : -1;
    [...bars.children].forEach((row, i) => {
      const p = probs ? probs[i] : 0;
      row.classList.toggle("top", i === top);
      row.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
      row.querySelector(".pct").textContent = probs ? (100 * p).toFixed(1) + "%" : "";
    });
  }

  function show(answer) {
    const p = answer.probabilities;
    $("prediction").textContent = names[answer.prediction];
    $("prediction").dataset.prediction = String(answer.prediction);
    $("confidence").textContent = (100 * p[answer.prediction]).toFixed(1) + "% sure";
    $("preview").src = answer.preview;
    renderBars(p);
  }

  function point(e) {
    const r = pad.getBoundingClientRect();
    return { x: (e.clientX - r.left) * pad.width / r.width, y: (e.clientY - r.top) * pad.height / r.height };
  }

  function stroke(from, to) {
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 24;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  }

  pad.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    drawing = true;
    uploaded = null;
    last = point(e);
    stroke(last, { x: last.x + 0.01, y: last.y });
    hasInk = true;
    $("hint").classList.add("hidden");
    schedule();
  });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of (events.length ? events : [e])) {
      const p = point(ev);
      stroke(last, p);
      last = p;
    }
    schedule();
  });
  let strokesEnded = 0;
  const end = () => {
    if (!drawing) return;
    drawing = false;
    clearTimeout(timer);
    timer = null;
    predict();
    // For scripts driving the page: this stroke's prediction is asked for (body is busy).
    document.body.dataset.strokes = String(++strokesEnded);
  };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);

  function schedule() {
    if (timer === null) timer = setTimeout(() => { timer = null; predict(); }, THROTTLE_MS);
  }

  function predict() {
    if (!hasInk && !uploaded) return;
    if (inFlight) { again = true; return; }
    inFlight = true;
    document.body.dataset.busy = "1";
    const sent = generation;
    const done = () => {
      inFlight = false;
      if (again) { again = false; predict(); } else { delete document.body.dataset.busy; }
    };
    const send = (blob, name) => {
      const form = new FormData();
      form.append("file", blob, name);
      fetch("/api/predict", { method: "POST", body: form })
        .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
        .then(({ ok, body }) => {
          if (sent !== generation) return;  // cleared meanwhile
          if (ok) { show(body); status(""); } else { status(body.error || "the server refused the picture", true); }
        })
        .catch((err) => status("no answer from the server (" + err.message + ")", true))
        .finally(done);
    };
    if (uploaded) send(uploaded, uploaded.name || "upload");
    else pad.toBlob((blob) => send(blob, "drawing.png"), "image/png");
  }

  function useFile(file) {
    if (!file) return;
    reset();
    uploaded = file;
    $("hint").classList.add("hidden");
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => {
      const s = Math.min(pad.width / img.width, pad.height / img.height);
      const w = img.width * s, h = img.height * s;
      ctx.drawImage(img, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
      hasInk = true;
      URL.revokeObjectURL(url);
    };
    img.onerror = () => URL.revokeObjectURL(url);
    img.src = url;
    predict();
  }

  $("clear").addEventListener("click", reset);
  $("upload").addEventListener("change", (e) => { useFile(e.target.files[0]); e.target.value = ""; });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("dragover"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragover"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("dragover");
    useFile(e.dataTransfer.files[0]);
  });

  $("origin").textContent = location.host;
  fetch("/api/info").then((r) => r.json()).then((info) => {
    if (Array.isArray(info.class_names) && info.class_names.length === 10) names = info.class_names;
    $("bars").innerHTML = "";
    renderBars(null);
    const acc = info.test_accuracy == null ? "" : ` · test accuracy ${(100 * info.test_accuracy).toFixed(2)}%`;
    $("info").textContent = `run ${info.run} · ${info.model || "model"} on ${info.dataset}${acc} · ${info.backend}`;
  }).catch(() => { $("info").textContent = "model information unavailable"; });

  reset();
})();
