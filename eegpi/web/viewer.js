// eegpi live viewer: lists topics, subscribes to one (binary format) and plots every channel.
// No build step and no external code, so it works on a LAN without internet.
// `window.eegpiViewer` exposes the viewer's state for people and automated checks.
// When the appliance requires a token, the page asks for it once per browser tab (kept in
// sessionStorage) and offers it as the subprotocol "eegpi.bearer.<base64url>" beside "eegpi.v1":
// browsers cannot set an Authorization header on a WebSocket.
"use strict";

(() => {
  const PREFERRED_TOPICS = ["eeg_filtered", "eeg_voltage"];
  const TOKEN_KEY = "eegpi.token";
  const MAX_BUFFER = 250000; // samples per channel kept for the plot
  const PALETTE = ["#4fc3f7", "#81c784", "#ffb74d", "#e57373", "#ba68c8", "#4db6ac",
    "#fff176", "#f06292", "#90a4ae", "#aed581", "#7986cb", "#ff8a65"];

  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);

  const status = {
    connected: false,
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/data`,
    topics: [],
    pendingTopics: [],
    topic: null,
    subscribed: false,
    pending: false,
    meta: null,
    format: params.get("format") === "json" ? "json" : "binary",
    messages: 0,
    samples: 0,
    lastSeq: null,
    gaps: 0,
    lostSamples: 0,
    lagged: 0,
    laggedSamples: 0,
    latencyMs: null,
    errors: [],
    reconnects: 0,
    authRequired: false,
    tokenRejected: false,
    protocol: null,
  };
  window.eegpiViewer = status;

  let ws = null;
  let retryMs = 500;
  let chosen = params.get("topic") || null;
  let paused = false;
  let plot = null; // {channels, rate, cap, buffers: Float32Array[], write, filled, total}
  let msgWindow = []; // arrival times (ms) of recent messages, for msg/s
  let token = sessionStorage.getItem(TOKEN_KEY) || null;

  // ---- connection -------------------------------------------------------------------------

  async function connect() {
    setConn("wait", "connecting");
    // A refused WebSocket shows the page no HTTP status, so ask /healthz (same checks) first.
    let probe = 0;
    try {
      const reply = await fetch("/healthz", {
        cache: "no-store",
        headers: token ? { Authorization: `Bearer ${token}` } : {},
      });
      probe = reply.status;
    } catch (e) {
      probe = 0; // unreachable: the WebSocket attempt below fails and retries
    }
    if (probe === 401) {
      status.authRequired = true;
      status.tokenRejected = Boolean(token);
      askToken();
      return;
    }
    const protocols = token ? [`eegpi.bearer.${base64url(token)}`, "eegpi.v1"] : [];
    ws = new WebSocket(status.url, protocols);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      status.connected = true;
      status.protocol = ws.protocol || null;
      retryMs = 500;
      setConn("on", "connected");
      send({ list_topics: true });
      if (status.topic) subscribe(status.topic);
    };
    ws.onclose = (event) => {
      status.connected = false;
      status.subscribed = false;
      setConn("off", "disconnected");
      showMessage(`connection closed (${event.code}${event.reason ? ": " + event.reason : ""}); ` +
        `reconnecting in ${(retryMs / 1000).toFixed(1)} s`, true);
      status.reconnects += 1;
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 8000);
    };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") onText(event.data);
      else onBinary(event.data);
    };
  }

  function askToken() {
    setConn("off", "token needed");
    setOverlay("This eegpi needs an access token: enter it above.");
    showMessage(status.tokenRejected ? "the token was not accepted; enter the right one"
      : "this eegpi requires a token (the one its gRPC control uses)", status.tokenRejected);
    $("auth").hidden = false;
    $("token").focus();
  }

  function base64url(text) {
    let binary = "";
    for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  function subscribe(topic) {
    if (status.subscribed && status.topic && status.topic !== topic) {
      send({ unsubscribe: status.topic });
    }
    status.topic = topic;
    status.subscribed = false;
    status.meta = null;
    status.lastSeq = null;
    plot = null;
    send({ subscribe: topic, format: status.format });
    const url = new URL(location.href);
    url.searchParams.set("topic", topic);
    history.replaceState(null, "", url);
  }

  // ---- messages ---------------------------------------------------------------------------

  function onText(text) {
    let msg;
    try { msg = JSON.parse(text); } catch (e) { showMessage("unreadable message from server", true); return; }
    if ("topics" in msg) onTopics(msg);
    else if ("subscribed" in msg) onSubscribed(msg);
    else if ("data" in msg) onData(msg.topic, msg.seq, msg.timestamp, msg.data.length,
      msg.data.length ? msg.data[0].length : 0, (i, c) => msg.data[i][c] ?? NaN);
    else if ("lagged" in msg) {
      status.lagged += msg.lagged;
      status.laggedSamples += msg.samples || 0;
      showMessage(`the server dropped ${msg.lagged} messages (${msg.samples} samples) ` +
        "because this page fell behind", true);
    } else if ("error" in msg) {
      status.errors.push(msg.error);
      showMessage(`server error ${msg.error.code}: ${msg.error.message}`, true);
    } else if ("unsubscribed" in msg) {
      // nothing to do: a new subscription follows
    }
  }

  function onBinary(buf) {
    const dv = new DataView(buf);
    if (buf.byteLength < 32 || dv.getUint32(0, false) !== 0x45475049) { // "EGPI"
      showMessage("binary message with an unknown header", true);
      return;
    }
    const headerLen = dv.getUint16(6, true);
    const seq = Number(dv.getBigUint64(8, true));
    const timestamp = dv.getFloat64(16, true);
    const n = dv.getUint32(24, true);
    const c = dv.getUint16(28, true);
    const topicLen = dv.getUint16(30, true);
    const topic = new TextDecoder().decode(new Uint8Array(buf, 32, topicLen));
    const values = new Float32Array(buf, headerLen, n * c);
    onData(topic, seq, timestamp, n, c, (i, ch) => values[i * c + ch]);
  }

  function onTopics(msg) {
    status.topics = msg.topics.map((t) => t.name);
    status.pendingTopics = msg.pending || [];
    const select = $("topic");
    const names = [...status.topics, ...status.pendingTopics.filter((n) => !status.topics.includes(n))];
    const current = status.topic || chosen;
    select.innerHTML = "";
    if (!names.length) select.add(new Option("(no topics yet)", ""));
    for (const name of names) {
      const label = status.topics.includes(name) ? name : `${name} (waiting)`;
      select.add(new Option(label, name, false, name === current));
    }
    if (!status.topic) {
      // A topic whose pipeline is not running yet is subscribed too: data flows when it starts.
      const pick = [chosen, ...PREFERRED_TOPICS].find((n) => n && status.topics.includes(n)) ||
        status.topics[0] ||
        [chosen, ...PREFERRED_TOPICS].find((n) => n && status.pendingTopics.includes(n)) ||
        status.pendingTopics[0];
      if (pick) { select.value = pick; subscribe(pick); }
      else $("overlay").textContent = "No topics yet: start a pipeline (eegpi start default).";
    }
  }

  function onSubscribed(msg) {
    if (msg.subscribed !== status.topic) return;
    status.subscribed = true;
    status.pending = Boolean(msg.pending);
    status.meta = msg.meta;
    plot = null;
    status.lastSeq = null;
    $("s-rate").textContent = msg.meta ? fmt(msg.meta.sample_rate) : "–";
    $("s-channels").textContent = msg.meta ? msg.meta.channels.length : "–";
    $("s-units").textContent = msg.meta ? msg.meta.units : "–";
    showMessage(msg.pending ? `subscribed to ${msg.subscribed}; waiting for its pipeline to start`
      : `subscribed to ${msg.subscribed}`, false);
    setOverlay(msg.pending ? `Waiting for “${msg.subscribed}” to start…` : "Waiting for data…");
  }

  function onData(topic, seq, timestamp, n, c, value) {
    if (topic !== status.topic || !status.meta) return;
    if (!plot || plot.channels !== c) plot = newPlot(c, status.meta.sample_rate);
    if (status.lastSeq !== null) {
      const expected = status.lastSeq;
      if (seq > expected) {
        status.gaps += 1;
        status.lostSamples += seq - expected;
        pushGap(Math.min(seq - expected, plot.cap));
      } else if (seq < expected) {
        plot = newPlot(c, status.meta.sample_rate); // stream restarted
      }
    }
    for (let i = 0; i < n; i++) {
      for (let ch = 0; ch < c; ch++) plot.buffers[ch][plot.write] = value(i, ch);
      plot.write = (plot.write + 1) % plot.cap;
      plot.filled = Math.min(plot.filled + 1, plot.cap);
      plot.total += 1;
    }
    status.lastSeq = seq + n;
    status.messages += 1;
    status.samples += n;
    const now = Date.now();
    msgWindow.push(now);
    const lastSampleTime = timestamp + (n - 1) / status.meta.sample_rate;
    const latency = now - lastSampleTime * 1000;
    status.latencyMs = status.latencyMs === null ? latency : status.latencyMs * 0.9 + latency * 0.1;
    setOverlay(null);
  }

  // ---- plot -------------------------------------------------------------------------------

  function newPlot(channels, rate) {
    const seconds = Number($("window").value);
    const cap = Math.max(2, Math.min(MAX_BUFFER, Math.ceil(rate * seconds)));
    const buffers = [];
    for (let ch = 0; ch < channels; ch++) buffers.push(new Float32Array(cap).fill(NaN));
    return { channels, rate, cap, buffers, write: 0, filled: 0, total: 0, scales: [] };
  }

  function pushGap(count) {
    for (let i = 0; i < count; i++) {
      for (const buf of plot.buffers) buf[plot.write] = NaN;
      plot.write = (plot.write + 1) % plot.cap;
      plot.filled = Math.min(plot.filled + 1, plot.cap);
      plot.total += 1;
    }
  }

  function draw() {
    requestAnimationFrame(draw);
    updateStats();
    if (paused) return;
    const canvas = $("plot");
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.floor(canvas.clientWidth * dpr));
    const height = Math.max(1, Math.floor(canvas.clientHeight * dpr));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#0f1419";
    ctx.fillRect(0, 0, width, height);
    if (!plot || !status.meta) return;

    const left = Math.round(96 * dpr);
    const plotW = width - left - Math.round(8 * dpr);
    const rowH = height / plot.channels;
    const names = status.meta.channels || [];
    const units = status.meta.units || "";
    const fixed = $("scale").value === "auto" ? null : Number($("scale").value);

    drawTimeGrid(ctx, left, plotW, height, dpr);
    ctx.font = `${Math.round(12 * dpr)}px system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    for (let ch = 0; ch < plot.channels; ch++) {
      const mid = rowH * (ch + 0.5);
      const { center, half } = channelScale(ch, fixed);
      ctx.strokeStyle = "#1c2631";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(left, Math.round(rowH * (ch + 1)) + 0.5);
      ctx.lineTo(left + plotW, Math.round(rowH * (ch + 1)) + 0.5);
      ctx.stroke();
      ctx.fillStyle = PALETTE[ch % PALETTE.length];
      ctx.fillText(names[ch] || `ch${ch + 1}`, 8 * dpr, mid - 7 * dpr);
      ctx.fillStyle = "#7f8fa3";
      ctx.fillText(`±${fmt(half)} ${units}`, 8 * dpr, mid + 8 * dpr);
      drawTrace(ctx, plot.buffers[ch], left, plotW, mid, (rowH * 0.45) / half, center, ch, dpr);
    }
  }

  function channelScale(ch, fixed) {
    const buf = plot.buffers[ch];
    let sum = 0, count = 0, min = Infinity, max = -Infinity;
    const step = Math.max(1, Math.floor(plot.cap / 4000));
    for (let i = 0; i < plot.cap; i += step) {
      const v = buf[i];
      if (Number.isFinite(v)) { sum += v; count++; if (v < min) min = v; if (v > max) max = v; }
    }
    const center = count ? sum / count : 0;
    if (fixed) return { center, half: fixed };
    const target = count ? Math.max(Math.abs(max - center), Math.abs(min - center), 1e-6) * 1.1 : 1;
    const prev = plot.scales[ch] || target;
    // grow at once, shrink slowly: stable traces without clipping
    const half = target > prev ? target : prev * 0.98 + target * 0.02;
    plot.scales[ch] = half;
    return { center, half };
  }

  function drawTrace(ctx, buf, left, plotW, mid, gain, center, ch, dpr) {
    const cap = plot.cap;
    const start = plot.write; // oldest sample in the ring
    const perPx = cap / plotW;
    ctx.strokeStyle = PALETTE[ch % PALETTE.length];
    ctx.lineWidth = Math.max(1, dpr);
    ctx.beginPath();
    let pen = false;
    if (perPx <= 1.5) {
      for (let i = 0; i < cap; i++) {
        const v = buf[(start + i) % cap];
        if (!Number.isFinite(v)) { pen = false; continue; }
        const x = left + (i / (cap - 1)) * plotW;
        const y = mid - (v - center) * gain;
        if (pen) ctx.lineTo(x, y); else { ctx.moveTo(x, y); pen = true; }
      }
    } else {
      for (let px = 0; px < plotW; px++) {
        const from = Math.floor(px * perPx), to = Math.min(cap, Math.floor((px + 1) * perPx));
        let lo = Infinity, hi = -Infinity;
        for (let i = from; i < to; i++) {
          const v = buf[(start + i) % cap];
          if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
        }
        if (lo === Infinity) { pen = false; continue; }
        const x = left + px;
        const y1 = mid - (lo - center) * gain, y2 = mid - (hi - center) * gain;
        if (pen) ctx.lineTo(x, y1); else { ctx.moveTo(x, y1); pen = true; }
        ctx.lineTo(x, y2);
      }
    }
    ctx.stroke();
  }

  function drawTimeGrid(ctx, left, plotW, height, dpr) {
    // one line per second of signal, moving with the data
    const rate = plot.rate;
    const newest = plot.total;
    ctx.strokeStyle = "#1f2a36";
    ctx.fillStyle = "#4b5a6b";
    ctx.lineWidth = 1;
    ctx.font = `${Math.round(10 * dpr)}px system-ui, sans-serif`;
    ctx.textBaseline = "bottom";
    const firstSecond = Math.ceil((newest - plot.cap) / rate);
    for (let s = firstSecond; s * rate <= newest; s++) {
      const x = Math.round(left + ((s * rate - (newest - plot.cap)) / plot.cap) * plotW) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, 0);
      ctx.lineTo(x, height);
      ctx.stroke();
      const ago = (newest - s * rate) / rate;
      ctx.fillText(ago < 0.5 ? "now" : `-${ago.toFixed(0)} s`, x + 3 * dpr, height - 2 * dpr);
    }
  }

  // ---- page -------------------------------------------------------------------------------

  function updateStats() {
    const now = Date.now();
    msgWindow = msgWindow.filter((t) => now - t < 1000);
    $("s-msgs").textContent = msgWindow.length;
    $("s-seq").textContent = status.lastSeq === null ? "–" : status.lastSeq;
    $("s-latency").textContent = status.latencyMs === null ? "–"
      : Math.abs(status.latencyMs) < 10000 ? `${status.latencyMs.toFixed(0)} ms`
      : `${(status.latencyMs / 1000).toFixed(0)} s (clocks differ?)`;
    $("s-gaps").textContent = status.gaps;
    $("s-lost").textContent = status.lostSamples;
    $("s-lagged").textContent = status.lagged;
    $("w-gaps").classList.toggle("warn", status.gaps > 0);
    $("w-lagged").classList.toggle("warn", status.lagged > 0);
  }

  function setConn(kind, text) {
    const pill = $("conn");
    pill.className = `pill ${kind}`;
    pill.textContent = text;
  }

  function setOverlay(text) {
    const overlay = $("overlay");
    overlay.hidden = !text;
    if (text) overlay.textContent = text;
  }

  function showMessage(text, isError) {
    const el = $("message");
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
  }

  function fmt(x) {
    return Math.abs(x) >= 100 || Number.isInteger(x) ? String(Math.round(x)) : x.toPrecision(2);
  }

  $("topic").addEventListener("change", (e) => {
    chosen = e.target.value;
    if (chosen) subscribe(chosen);
  });
  $("window").addEventListener("change", () => {
    if (plot) plot = newPlot(plot.channels, plot.rate);
  });
  $("pause").addEventListener("click", (e) => {
    paused = !paused;
    e.target.textContent = paused ? "Resume" : "Pause";
    e.target.classList.toggle("active", paused);
  });
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value.trim() || null;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    $("auth").hidden = true;
    connect();
  });
  setInterval(() => send({ list_topics: true }), 5000);

  connect();
  requestAnimationFrame(draw);
})();
