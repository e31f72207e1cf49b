// taskd's dashboard: plain JavaScript, no framework, nothing fetched from
// anywhere but this taskd. Reads /api (the socket's read-only ops as JSON)
// and stays live on /api/events (Server-Sent Events: "job" events as the
// socket's subscribe sends them, and a "status" every second).
"use strict";

(function () {
  const RECENT_MAX = 20;
  const RUNNING_SHOWN = 200;
  const CHART_SECONDS = 120;
  const TAIL_BYTES = 65536;
  const FINAL = new Set(["done", "failed", "timeout", "cancelled", "lost"]);

  const jobs = new Map();      // id -> what we know of the job (list/show objects, events)
  const running = new Set();   // ids
  let recent = [];             // ids, most recent first
  const wanted = new Set();    // ids whose details (command...) we still need
  let lastStatus = null;
  let lastFinished = null;     // {count, t}: for the throughput
  const rates = [];            // jobs/s, one per status, newest last
  let skew = null;             // server clock - our clock, seconds
  let source = null;
  let renderQueued = false;
  let jobView = null;          // {id, stream}
  let jobViewTimer = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function showError(msg) {
    const b = $("error");
    if (msg) {
      b.textContent = msg;
      b.classList.remove("hidden");
    } else {
      b.classList.add("hidden");
    }
  }

  async function api(path) {
    const r = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (r.status === 401) {
      showError("This taskd asks for a token: open the dashboard as /?access_token=TOKEN " +
                "(the token in http.token_file).");
      throw new Error("unauthorized");
    }
    const body = await r.json();
    if (!r.ok) {
      const e = body && body.error ? body.error : { code: String(r.status), message: r.statusText };
      throw new Error(e.code + ": " + e.message);
    }
    return body;
  }

  // ---- formatting ----

  function now() {
    return Date.now() / 1000 + (skew || 0);
  }

  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return "";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return s.toFixed(1) + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + Math.floor(s % 60) + " s";
    const h = Math.floor(m / 60);
    if (h < 48) return h + " h " + (m % 60) + " min";
    return Math.floor(h / 24) + " d " + (h % 24) + " h";
  }

  function clock(t) {
    if (!t) return "";
    const d = new Date(t * 1000);
    return d.toLocaleTimeString();
  }

  function command(j) {
    if (!j) return "";
    if (j.type && j.type !== "exec") return "(" + j.type + ") " + (j.argv || []).join(" ");
    if (j.argv) return j.argv.join(" ");
    return "";
  }

  function label(j) {
    const cmd = command(j);
    return j.name ? j.name + (cmd ? " — " + cmd : "") : cmd;
  }

  function badge(state) {
    return el("span", state, "badge state-" + state);
  }

  function jobLink(id) {
    const a = el("a", id);
    a.href = "#/jobs/" + id;
    return a;
  }

  // ---- the model ----

  function merge(obj) {
    const old = jobs.get(obj.id) || {};
    const j = Object.assign(old, obj);
    jobs.set(j.id, j);
    if (j.argv) wanted.delete(j.id);
    return j;
  }

  function noteRecent(id) {
    recent = [id].concat(recent.filter((x) => x !== id)).slice(0, RECENT_MAX);
  }

  // A row flashes once when it appears (re-inserting it must not replay that).
  function newRow(cells) {
    const tr = el("tr", null, "new");
    tr.addEventListener("animationend", () => tr.classList.remove("new"), { once: true });
    for (let i = 0; i < cells; i++) tr.appendChild(el("td"));
    return tr;
  }

  function setRows(tb, rows) {
    const cur = tb.children;
    if (cur.length === rows.length && rows.every((r, i) => cur[i] === r)) return;
    tb.replaceChildren(...rows);
  }

  function place(j) {
    if (j.state === "running") {
      running.add(j.id);
    } else {
      running.delete(j.id);
      if (FINAL.has(j.state)) noteRecent(j.id);
    }
    if (!j.argv && (running.has(j.id) || recent.includes(j.id))) wanted.add(j.id);
  }

  function onJobEvent(ev) {
    if (typeof ev.at === "number") {
      const s = ev.at - Date.now() / 1000;
      // Events arrive a little after they happen: the largest difference is the closest.
      if (skew === null || s > skew || skew - s > 5) skew = s;
    }
    const j = merge({ id: ev.id, state: ev.state });
    if (ev.name !== undefined) j.name = ev.name;
    if (ev.state === "running") {
      j.started_at = ev.at;
    }
    if (FINAL.has(ev.state)) {
      j.finished_at = ev.at;
      j.exit_code = ev.exit_code;
      j.signal = ev.signal;
      j.error = ev.error;
      j.wall = undefined;
    }
    place(j);
    // Its run's figures (wall time, pid) come with its job object.
    if (FINAL.has(ev.state) || ev.state === "running") wanted.add(ev.id);
    if (jobView && jobView.id === ev.id) scheduleJobView();
    scheduleRender();
  }

  // Details (command, pid, timings) of jobs on screen, a batch at a time.
  async function fetchWanted() {
    // Only what is on screen: a burst of jobs scrolls most of them away unseen.
    Array.from(wanted).forEach((id) => {
      if (!running.has(id) && !recent.includes(id)) wanted.delete(id);
    });
    if (wanted.size === 0) return;
    const ids = Array.from(wanted).slice(0, 50);
    ids.forEach((id) => wanted.delete(id));
    try {
      const r = await api("/api/jobs?limit=0&" + ids.map((id) => "id=" + id).join("&"));
      r.jobs.forEach((j) => {
        const known = jobs.get(j.id);
        // The job ended after this answer was made (its event came first): take
        // what does not change, and ask again for its final figures.
        if (known && FINAL.has(known.state) && !FINAL.has(j.state)) {
          ["argv", "type", "name", "class", "routed", "pool", "cwd", "labels"].forEach((k) => {
            known[k] = j[k];
          });
          wanted.add(j.id);
          return;
        }
        merge(j);
      });
      scheduleRender();
    } catch (e) {
      ids.forEach((id) => wanted.add(id));
    }
  }

  function onStatus(st) {
    lastStatus = st;
    const fin = st.counters ? st.counters.jobs_finished : null;
    const t = Date.now() / 1000;
    if (fin !== null && lastFinished !== null && t > lastFinished.t) {
      rates.push(Math.max(0, (fin - lastFinished.count) / (t - lastFinished.t)));
      while (rates.length > CHART_SECONDS) rates.shift();
    }
    if (fin !== null) lastFinished = { count: fin, t: t };
    scheduleRender();
  }

  async function loadAll() {
    const [st, run, rec] = await Promise.all([
      api("/api/status"),
      api("/api/jobs?state=running&limit=0"),
      api("/api/jobs?limit=" + RECENT_MAX),
    ]);
    onStatus(st);
    running.clear();
    run.jobs.forEach((j) => place(merge(j)));
    const finished = rec.jobs.filter((j) => FINAL.has(j.state));
    finished.sort((a, b) => (b.finished_at || 0) - (a.finished_at || 0));
    recent = [];
    finished.slice().reverse().forEach((j) => {
      merge(j);
      noteRecent(j.id);
    });
    showError(null);
    scheduleRender();
  }

  // ---- the live stream ----

  function connect() {
    if (source) source.close();
    source = new EventSource("/api/events");
    source.addEventListener("open", () => {
      setLive(true);
      loadAll().catch((e) => showError("Cannot read taskd: " + e.message));
    });
    source.addEventListener("error", () => {
      setLive(false);
    });
    source.addEventListener("job", (m) => onJobEvent(JSON.parse(m.data)));
    source.addEventListener("status", (m) => onStatus(JSON.parse(m.data)));
    // Fell behind (overflow) or taskd stopping (shutdown): start over in a moment.
    ["overflow", "shutdown"].forEach((name) => {
      source.addEventListener(name, () => {
        setLive(false);
        source.close();
        setTimeout(connect, 2000);
      });
    });
  }

  function setLive(on) {
    const b = $("live");
    b.textContent = on ? "live" : "reconnecting";
    b.className = "badge " + (on ? "good" : "warn");
  }

  // ---- rendering ----

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }

  function setText(id, v) {
    const e = $(id);
    const s = String(v);
    if (e.textContent !== s) e.textContent = s;
  }

  function renderStatus(st) {
    setText("version", "v" + st.version + " · pid " + st.pid);
    setText("uptime", "up " + duration(st.uptime));
    $("stopping").classList.toggle("hidden", !st.stopping);
    setText("q-pending", st.queue.pending);
    setText("q-cpu", st.queue.cpu);
    setText("q-io", st.queue.io);
    $("q-cpu-paused").classList.toggle("hidden", !(st.paused && st.paused.cpu));
    $("q-io-paused").classList.toggle("hidden", !(st.paused && st.paused.io));
    const pp = st.process_pool;
    const busyWorkers = (pp.workers || []).filter((w) => w.state === "busy").length;
    setText("r-cpu", busyWorkers);
    setText("r-io", st.thread_pool.busy);
    setText("r-total", st.jobs.running);

    const states = $("states");
    states.replaceChildren();
    Object.keys(st.jobs).forEach((k) => {
      states.appendChild(el("span", k));
      states.appendChild(el("span", st.jobs[k]));
    });

    setText("pp-mode", pp.mode + ", " + pp.min + "–" + pp.max + " workers");
    const tb = $("workers");
    tb.replaceChildren();
    (pp.workers || []).forEach((w) => {
      const tr = el("tr");
      tr.appendChild(el("td", w.index));
      tr.appendChild(el("td", w.pid));
      tr.appendChild(el("td")).appendChild(badge(w.state));
      const job = el("td");
      if (w.job) job.appendChild(jobLink(w.job));
      tr.appendChild(job);
      tr.appendChild(el("td", w.jobs_done));
      tr.appendChild(el("td", w.rss_kb ? (w.rss_kb / 1024).toFixed(1) + " MiB" : ""));
      tr.appendChild(el("td", w.started_at ? duration(now() - w.started_at) : ""));
      tb.appendChild(tr);
    });
    const bo = $("pp-backoff");
    if (pp.backoff > 0) {
      bo.textContent = pp.spawn_failures + " worker starts failed in a row: next try in " +
        pp.backoff.toFixed(1) + " s";
      bo.classList.remove("hidden");
    } else {
      bo.classList.add("hidden");
    }
    const tp = st.thread_pool;
    setText("tp-threads", tp.threads);
    setText("tp-busy", tp.busy);
    setText("tp-idle", tp.idle);
    setText("tp-max", tp.max);
    setText("tp-queued", tp.queued);
  }

  function renderChart() {
    const c = $("chart");
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 480;
    const h = c.clientHeight || 90;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const style = getComputedStyle(document.documentElement);
    g.strokeStyle = style.getPropertyValue("--line").trim() || "#ddd";
    g.beginPath();
    g.moveTo(0, h - 0.5);
    g.lineTo(w, h - 0.5);
    g.stroke();
    const max = Math.max(1, ...rates);
    const bw = w / CHART_SECONDS;
    g.fillStyle = style.getPropertyValue("--accent").trim() || "#2f6fdf";
    rates.forEach((r, i) => {
      const x = w - (rates.length - i) * bw;
      const bh = (r / max) * (h - 14);
      g.fillRect(x, h - bh, Math.max(1, bw - 1), bh);
    });
    g.fillStyle = style.getPropertyValue("--muted").trim() || "#888";
    g.font = "11px sans-serif";
    g.fillText("max " + (max >= 10 ? Math.round(max) : max.toFixed(1)) + "/s", 4, 11);
    setText("rate", rates.length ? rates[rates.length - 1].toFixed(1) : "0");
  }

  // One row per job id in tb (made once, kept while the job stays), cells
  // filled by fill(row, job); "none" is shown when there is no row.
  function renderJobRows(tb, ids, ncells, none, fill) {
    const rows = new Map();
    Array.from(tb.children).forEach((tr) => rows.set(Number(tr.dataset.id), tr));
    const out = ids.map((id) => {
      let tr = rows.get(id);
      if (!tr) {
        tr = newRow(ncells);
        tr.dataset.id = id;
        tr.children[0].appendChild(jobLink(id));
        tr.children[1].className = "cmd";
      }
      const j = jobs.get(id) || { id: id };
      tr.children[1].textContent = label(j);
      fill(tr.children, j);
      return tr;
    });
    setRows(tb, out);
    $(none).classList.toggle("hidden", out.length > 0);
  }

  function renderRunning() {
    const ids = Array.from(running).sort((a, b) => a - b).slice(0, RUNNING_SHOWN);
    const t = now();
    renderJobRows($("running"), ids, 5, "running-none", (c, j) => {
      c[2].textContent = j.routed || j.class || "";
      c[3].textContent = j.pid || "";
      c[4].textContent = j.started_at ? duration(t - j.started_at) : "";
    });
  }

  function renderRecent() {
    renderJobRows($("recent"), recent, 6, "recent-none", (c, j) => {
      if (c[2].textContent !== j.state) c[2].replaceChildren(badge(j.state));
      c[3].textContent = j.exit_code !== null && j.exit_code !== undefined ? j.exit_code
        : j.signal ? "signal " + j.signal : "";
      c[4].textContent = j.wall ? duration(j.wall) : "";
      c[5].textContent = clock(j.finished_at);
    });
  }

  function render() {
    if (lastStatus) renderStatus(lastStatus);
    renderChart();
    renderRunning();
    renderRecent();
  }

  // ---- a job's page ----

  function field(tb, name, value) {
    if (value === null || value === undefined || value === "") return;
    const tr = el("tr");
    tr.appendChild(el("th", name));
    const td = el("td", typeof value === "object" ? JSON.stringify(value) : value);
    if (name === "command" || name === "cwd") td.className = "mono cmd";
    tr.appendChild(td);
    tb.appendChild(tr);
  }

  function decodeChunk(r) {
    if (r.encoding === "base64") {
      const bin = atob(r.data);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return new TextDecoder("utf-8").decode(bytes);
    }
    return r.data;
  }

  async function loadJobView() {
    if (!jobView) return;
    const id = jobView.id;
    const stream = jobView.stream;
    let j;
    try {
      j = await api("/api/jobs/" + id);
    } catch (e) {
      $("job-fields").replaceChildren();
      $("job-attempts").replaceChildren();
      setText("job-id", id);
      $("job-state").textContent = "unknown";
      $("job-state").className = "badge";
      $("job-output").textContent = e.message;
      return;
    }
    if (!jobView || jobView.id !== id) return;
    merge(j);
    setText("job-id", j.id);
    const st = $("job-state");
    st.textContent = j.state;
    st.className = "badge state-" + j.state;
    const tb = $("job-fields");
    tb.replaceChildren();
    field(tb, "name", j.name);
    field(tb, "command", command(j));
    field(tb, "cwd", j.cwd);
    field(tb, "class", j.class + (j.routed ? " → " + j.routed + " (" + j.pool + " pool)" : ""));
    field(tb, "owner", "uid " + j.owner.uid + ", gid " + j.owner.gid);
    field(tb, "labels", Object.keys(j.labels || {}).length ? j.labels : null);
    field(tb, "priority", j.priority);
    field(tb, "pid", j.pid);
    field(tb, "exit code", j.exit_code);
    field(tb, "signal", j.signal);
    field(tb, "error", j.error);
    field(tb, "submitted", clock(j.submitted_at));
    field(tb, "started", clock(j.started_at));
    field(tb, "finished", clock(j.finished_at));
    field(tb, "wall", j.wall ? duration(j.wall) : null);
    field(tb, "cpu", j.cpu_user !== null && j.cpu_user !== undefined
      ? (j.cpu_user + j.cpu_sys).toFixed(3) + " s" : null);
    field(tb, "max RSS", j.max_rss_kb > 0 ? (j.max_rss_kb / 1024).toFixed(1) + " MiB" : null);
    field(tb, "attempt", j.attempt + (j.retries ? " of " + (j.retries + 1) : ""));
    field(tb, "notify", j.notify);

    const at = $("job-attempts");
    at.replaceChildren();
    (j.attempts || []).concat([{
      attempt: j.attempt, state: j.state, exit_code: j.exit_code, signal: j.signal,
      error: j.error, started_at: j.started_at, finished_at: j.finished_at,
    }]).forEach((a) => {
      const tr = el("tr");
      tr.appendChild(el("td", a.attempt));
      tr.appendChild(el("td")).appendChild(badge(a.state));
      tr.appendChild(el("td", a.exit_code));
      tr.appendChild(el("td", a.signal));
      tr.appendChild(el("td", a.error, "cmd"));
      tr.appendChild(el("td", clock(a.started_at)));
      tr.appendChild(el("td", clock(a.finished_at)));
      at.appendChild(tr);
    });

    try {
      const size = (await api("/api/jobs/" + id + "/logs?stream=" + stream + "&max=1")).size;
      const off = Math.max(0, size - TAIL_BYTES);
      const r = await api("/api/jobs/" + id + "/logs?stream=" + stream + "&offset=" + off +
                          "&max=" + TAIL_BYTES);
      if (!jobView || jobView.id !== id || jobView.stream !== stream) return;
      const out = $("job-output");
      const text = (off > 0 ? "…\n" : "") + decodeChunk(r);
      if (out.textContent !== text) out.textContent = text || "(nothing)";
    } catch (e) {
      $("job-output").textContent = e.message;
    }
  }

  function scheduleJobView() {
    if (jobViewTimer) return;
    jobViewTimer = setTimeout(() => {
      jobViewTimer = null;
      loadJobView();
    }, 200);
  }

  function route() {
    const m = location.hash.match(/^#\/jobs\/(\d+)$/);
    if (m) {
      jobView = { id: Number(m[1]), stream: jobView && jobView.id === Number(m[1]) ? jobView.stream : "stdout" };
      $("overview").classList.add("hidden");
      $("job").classList.remove("hidden");
      $("job-output").textContent = "";
      selectTab(jobView.stream);
      loadJobView();
    } else {
      jobView = null;
      $("job").classList.add("hidden");
      $("overview").classList.remove("hidden");
      scheduleRender();
    }
  }

  function selectTab(stream) {
    $("tab-stdout").classList.toggle("active", stream === "stdout");
    $("tab-stderr").classList.toggle("active", stream === "stderr");
  }

  // ---- start ----

  function start() {
    // The token came in the address (?access_token=): the cookie has it now.
    if (location.search.includes("access_token=")) {
      history.replaceState(null, "", location.pathname + location.hash);
    }
    ["stdout", "stderr"].forEach((s) => {
      $("tab-" + s).addEventListener("click", () => {
        if (!jobView) return;
        jobView.stream = s;
        selectTab(s);
        loadJobView();
      });
    });
    window.addEventListener("hashchange", route);
    route();
    connect();
    setInterval(() => {
      fetchWanted();
      // Elapsed times move on between events.
      if (!jobView) renderRunning();
    }, 500);
    setInterval(() => {
      if (jobView && jobView.id && jobs.get(jobView.id) && jobs.get(jobView.id).state === "running") {
        loadJobView();
      }
    }, 2000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
