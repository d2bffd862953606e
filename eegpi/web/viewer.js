// eegpi live viewer: one WebSocket, several subscriptions. The signal topic feeds the traces and
// the spectrum (computed here); a band_power topic feeds the bars; the `markers` topic puts
// labelled lines on the traces; an impedance topic feeds the electrode tiles and the railed /
// lead-off marks. Settings change the publishing pipeline's live parameters.
// No build step and no external code, so it works on a LAN without internet.
// `window.eegpiViewer` exposes the viewer's state for people and automated checks.

import { BandState, drawBands, isBandTopic } from "./bands.js";
import { Connection, decodeBinary } from "./connection.js";
import { Controls } from "./controls.js";
import { flagsFromImpedance, isImpedanceTopic, renderImpedance } from "./impedance.js";
import { computeSpectrum, drawSpectrum } from "./spectrum.js";
import { SignalBuffer, drawTraces } from "./traces.js";
import { $, fitCanvas, fmt } from "./util.js";

const PREFERRED_TOPICS = ["eeg_filtered", "eeg_voltage"];
const VIEWS = ["traces", "spectrum", "bands", "impedance"];
const MAX_MARKERS = 100;
const SPECTRUM_EVERY_MS = 250;
const RAIL_FRACTION = 0.98; // of full scale: a sample this close to it is a railed channel
// Batches of up to 20 ms of signal: 50 updates a second, smooth to the eye, and the pipeline
// behind them ticks that much less often than for the 10 ms default (50 against 83 wake-ups a
// second at 250 SPS).
const MAX_LATENCY_MS = 20;

const params = new URLSearchParams(location.search);

const status = {
  connected: false,
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/data`,
  topics: [],
  pendingTopics: [],
  topic: null,
  pipeline: null,
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
  view: VIEWS.includes(params.get("view")) ? params.get("view") : "traces",
  traces: null,
  spectrum: null,
  bandsTopic: null,
  bands: null,
  impedanceTopic: null,
  impedance: null,
  impedanceEvents: 0,
  markersTopic: null,
  markers: [],
  flags: {},
  metaChanges: 0,
  metaAtSeq: null, // the signal topic's seq when its meta last changed
  updatedAtSeq: null, // the signal topic's seq when a stage_updated reply came
  controls: null,
};
window.eegpiViewer = status;

const subs = new Map(); // topic -> {meta}: what this connection asked for
let info = new Map(); // topic -> {meta, pipeline, kind} from the last topic list
let chosen = params.get("topic") || null;
let paused = false;
let sig = null; // SignalBuffer of the signal topic
let bandState = null; // BandState of the band-power topic
let spectrum = null; // the last computed spectrum (for drawing)
let impedanceFlags = {};
let railFlags = {};
let msgWindow = [];

const conn = new Connection(status.url, {
  onOpen() {
    status.connected = true;
    status.protocol = conn.protocol;
    setConn("on", "connected");
    subs.clear();
    conn.send({ list_topics: true });
  },
  onClose(event, retryMs) {
    status.connected = false;
    status.subscribed = false;
    subs.clear();
    setConn("off", "disconnected");
    showMessage(`connection closed (${event.code}${event.reason ? ": " + event.reason : ""}); ` +
      `reconnecting in ${(retryMs / 1000).toFixed(1)} s`, true);
    status.reconnects += 1;
  },
  onText,
  onBinary(buf) {
    const frame = decodeBinary(buf);
    if (!frame) {
      showMessage("binary message with an unknown header", true);
      return;
    }
    const { values, c } = frame;
    onData(frame.topic, frame.seq, frame.timestamp, frame.n, c, (i, ch) => values[i * c + ch]);
  },
  onAuth(rejected) {
    status.authRequired = true;
    status.tokenRejected = rejected;
    setConn("off", "token needed");
    setOverlay("This eegpi needs an access token: enter it above.");
    showMessage(rejected ? "the token was not accepted; enter the right one"
      : "this eegpi requires a token (the one its gRPC control uses)", rejected);
    $("auth").hidden = false;
    $("token").focus();
  },
});
const controls = new Controls($("controls"), (obj) => conn.send(obj));
status.controls = controls.state;

// ---- topics and subscriptions -------------------------------------------------------------

function kindOf(name, meta) {
  if ((meta && meta.kind === "markers") || (!meta && name === "markers")) return "markers";
  if (isImpedanceTopic(name, meta)) return "impedance";
  if (isBandTopic(meta) || (!meta && /band_?power/i.test(name))) return "bands";
  return "signal";
}

/** The first name in `names` that is of `kind`, preferring the signal topic's pipeline. */
function pick(kind, names) {
  const of = names.filter((n) => info.get(n) && info.get(n).kind === kind);
  return of.find((n) => status.pipeline && info.get(n).pipeline === status.pipeline) || of[0] || null;
}

function onTopics(msg) {
  status.topics = msg.topics.map((t) => t.name);
  status.pendingTopics = msg.pending || [];
  info = new Map();
  for (const t of msg.topics) info.set(t.name, { meta: t.meta, pipeline: t.pipeline || null, kind: kindOf(t.name, t.meta) });
  for (const name of status.pendingTopics) {
    if (!info.has(name)) info.set(name, { meta: null, pipeline: null, kind: kindOf(name, null) });
  }
  const running = status.topics, waiting = status.pendingTopics.filter((n) => !running.includes(n));
  const all = [...running, ...waiting];
  if (chosen && info.has(chosen) && info.get(chosen).kind === "bands") {
    status.bandsTopic = chosen; // a band-power topic asked for by name: show its bars
    chosen = null;
    setView("bands");
  }
  if (!status.topic) {
    const signal = all.filter((n) => info.get(n).kind === "signal");
    const choice = [chosen, ...PREFERRED_TOPICS].find((n) => n && running.includes(n) && signal.includes(n)) ||
      signal.find((n) => running.includes(n)) ||
      [chosen, ...PREFERRED_TOPICS].find((n) => n && signal.includes(n)) || signal[0];
    if (choice) selectSignal(choice, false);
    else setOverlay("No topics yet: start a pipeline (eegpi start default).");
  }
  const pipeline = status.topic && info.get(status.topic) ? info.get(status.topic).pipeline : null;
  if (pipeline !== status.pipeline || (pipeline && controls.state.pipeline !== pipeline)) {
    status.pipeline = pipeline;
    controls.load(pipeline);
  }
  if (!status.bandsTopic || !info.has(status.bandsTopic)) status.bandsTopic = pick("bands", all);
  status.impedanceTopic = pick("impedance", running) || pick("impedance", all);
  status.markersTopic = pick("markers", all);
  fillSelect($("topic"), all.filter((n) => info.get(n).kind === "signal"), status.topic, running);
  fillSelect($("bands-topic"), all.filter((n) => info.get(n).kind === "bands"), status.bandsTopic, running);
  syncSubscriptions();
}

function fillSelect(select, names, current, running) {
  select.innerHTML = "";
  if (!names.length) select.add(new Option("(none yet)", ""));
  for (const name of names) {
    const label = running.includes(name) ? name : `${name} (waiting)`;
    select.add(new Option(label, name, false, name === current));
  }
}

/** Subscribe to what the page shows, unsubscribe from what it no longer shows. */
function syncSubscriptions() {
  const wanted = new Set([status.topic, status.bandsTopic, status.impedanceTopic, status.markersTopic].filter(Boolean));
  for (const topic of [...subs.keys()]) {
    if (!wanted.has(topic)) {
      conn.send({ unsubscribe: topic });
      subs.delete(topic);
    }
  }
  for (const topic of wanted) {
    if (!subs.has(topic) && conn.send({ subscribe: topic, format: status.format, max_latency_ms: MAX_LATENCY_MS })) {
      subs.set(topic, { meta: null });
    }
  }
}

/** Show `topic` as traces and spectrum; the counters start again for it. */
function selectSignal(topic, sync = true) {
  status.topic = topic;
  status.subscribed = false;
  status.meta = null;
  status.lastSeq = null;
  status.messages = 0;
  status.samples = 0;
  status.gaps = 0;
  status.lostSamples = 0;
  status.lagged = 0;
  status.laggedSamples = 0;
  status.latencyMs = null;
  status.spectrum = null;
  status.traces = null;
  msgWindow = [];
  sig = null;
  spectrum = null;
  railFlags = {};
  const url = new URL(location.href);
  url.searchParams.set("topic", topic);
  history.replaceState(null, "", url);
  if (sync) {
    const pipeline = info.get(topic) ? info.get(topic).pipeline : null;
    if (pipeline !== status.pipeline) {
      status.pipeline = pipeline;
      controls.load(pipeline);
    }
    syncSubscriptions();
  }
}

// ---- messages -----------------------------------------------------------------------------

function onText(text) {
  let msg;
  try { msg = JSON.parse(text); } catch (e) { showMessage("unreadable message from server", true); return; }
  if ("stage_updated" in msg) status.updatedAtSeq = status.lastSeq;
  if (controls.onMessage(msg)) {
    if ("error" in msg) showMessage(`${msg.error.code}: ${msg.error.message}`, true);
    return;
  }
  if ("topics" in msg) onTopics(msg);
  else if ("subscribed" in msg) onSubscribed(msg.subscribed, msg.meta, Boolean(msg.pending));
  else if ("event" in msg) onEvent(msg.topic, msg.event);
  else if ("data" in msg) {
    onData(msg.topic, msg.seq, msg.timestamp, msg.data.length,
      msg.data.length ? msg.data[0].length : 0, (i, c) => msg.data[i][c] ?? NaN);
  } else if ("meta" in msg && "topic" in msg) onMeta(msg.topic, msg.meta);
  else if ("lagged" in msg) {
    status.lagged += msg.lagged;
    status.laggedSamples += msg.samples || 0;
    showMessage(`the server dropped ${msg.lagged} messages (${msg.samples} samples) ` +
      "because this page fell behind", true);
  } else if ("error" in msg) {
    status.errors.push(msg.error);
    showMessage(`server error ${msg.error.code}: ${msg.error.message}`, true);
  }
}

function onSubscribed(topic, meta, pending) {
  const sub = subs.get(topic);
  if (!sub) return;
  sub.meta = meta;
  if (topic === status.bandsTopic) bandState = isBandTopic(meta) ? new BandState(meta) : null;
  if (topic !== status.topic) return;
  if (isBandTopic(meta)) { // known by name only until now: it is a band-power topic
    info.set(topic, { ...(info.get(topic) || {}), meta, kind: "bands" });
    status.bandsTopic = topic;
    bandState = new BandState(meta);
    status.topic = null;
    setView("bands");
    conn.send({ list_topics: true });
    return;
  }
  status.subscribed = true;
  status.pending = pending;
  status.meta = meta;
  sig = null;
  status.lastSeq = null;
  showStreamFacts(meta);
  showMessage(pending ? `subscribed to ${topic}; waiting for its pipeline to start`
    : `subscribed to ${topic}`, false);
  setOverlay(pending ? `Waiting for “${topic}” to start…` : "Waiting for data…");
}

/** A running stream's meta changed (a gain or filter change): new data carries it from now. */
function onMeta(topic, meta) {
  const sub = subs.get(topic);
  if (!sub) return;
  const before = sub.meta;
  sub.meta = meta;
  status.metaChanges += 1;
  controls.onMeta(topic, before, meta);
  if (topic === status.bandsTopic) bandState = isBandTopic(meta) ? new BandState(meta) : null;
  if (topic !== status.topic) return;
  status.meta = meta;
  status.metaAtSeq = status.lastSeq;
  const sameShape = sig && meta && meta.channels.length === sig.channels && meta.sample_rate === sig.rate;
  if (!sameShape) sig = null;
  railFlags = {};
  showStreamFacts(meta);
}

function onEvent(topic, event) {
  if (!event) return;
  if (topic === status.markersTopic) {
    if (status.pipeline && event.pipeline && event.pipeline !== status.pipeline) return;
    status.markers.push({ label: event.label, timestamp: event.timestamp, seq: event.seq,
      source: event.source || null });
    if (status.markers.length > MAX_MARKERS) status.markers.shift();
  } else if (topic === status.impedanceTopic && event.kind === "impedance") {
    status.impedance = event;
    status.impedanceEvents += 1;
    impedanceFlags = flagsFromImpedance(event);
    renderImpedance($("impedance-grid"), $("impedance-info"), event);
    updateFlags();
  }
}

function onData(topic, seq, timestamp, n, c, value) {
  if (topic === status.bandsTopic && topic !== status.topic) {
    if (bandState && bandState.push(n, c, value)) status.bands = { topic, ...bandState.summary() };
    return;
  }
  if (topic !== status.topic || !status.meta) return;
  if (!sig || sig.channels !== c) sig = new SignalBuffer(c, status.meta.sample_rate, Number($("window").value));
  if (status.lastSeq !== null) {
    if (seq > status.lastSeq) {
      status.gaps += 1;
      status.lostSamples += seq - status.lastSeq;
      sig.pushGap(seq - status.lastSeq);
    } else if (seq < status.lastSeq) {
      sig = new SignalBuffer(c, status.meta.sample_rate, Number($("window").value)); // restarted
    }
  }
  sig.push(n, value, timestamp);
  checkRails(n, c, value);
  status.lastSeq = seq + n;
  status.messages += 1;
  status.samples += n;
  const now = Date.now();
  msgWindow.push(now);
  const latency = now - (timestamp + (n - 1) / status.meta.sample_rate) * 1000;
  status.latencyMs = status.latencyMs === null ? latency : status.latencyMs * 0.9 + latency * 0.1;
  if (status.view !== "impedance" && status.view !== "bands") setOverlay(null);
}

/** Mark channels whose newest sample sits at the ADC's full scale (from the meta's gain). */
function checkRails(n, c, value) {
  const meta = status.meta;
  if (!n || !meta) return;
  let fullScale = null;
  if (meta.units === "counts") fullScale = () => 2 ** 23;
  else if (meta.units === "uV" && Array.isArray(meta.gain) && meta.vref_v) {
    fullScale = (ch) => (meta.vref_v * 1e6) / meta.gain[ch % meta.gain.length];
  }
  if (!fullScale) return;
  let changed = false;
  for (let ch = 0; ch < c; ch++) {
    const name = meta.channels[ch];
    const railed = Math.abs(value(n - 1, ch)) >= RAIL_FRACTION * fullScale(ch);
    if (Boolean(railFlags[name]) !== railed) { railFlags[name] = railed; changed = true; }
  }
  if (changed) updateFlags();
}

function updateFlags() {
  const flags = {};
  for (const [name, f] of Object.entries(impedanceFlags)) flags[name] = { ...f, source: "impedance" };
  for (const [name, railed] of Object.entries(railFlags)) {
    if (!railed) continue;
    flags[name] = { railed: true, leadOff: flags[name] ? flags[name].leadOff : false,
      source: flags[name] ? "impedance+signal" : "signal" };
  }
  status.flags = flags;
}

// ---- drawing ------------------------------------------------------------------------------

function draw() {
  requestAnimationFrame(draw);
  updateStats();
  if (paused || status.view === "impedance") return;
  const view = fitCanvas($("plot"));
  if (status.view === "traces") {
    if (!sig || !status.meta) return;
    const scale = $("scale").value;
    const drawn = drawTraces(view.ctx, sig, { ...view, names: status.meta.channels || [],
      units: status.meta.units || "", scale: Number(scale) || scale, flags: status.flags,
      markers: status.markers });
    status.traces = { ...drawn, frames: ((status.traces && status.traces.frames) || 0) + 1 };
  } else if (status.view === "spectrum") {
    if (!spectrum) {
      setOverlay(sig ? "Collecting 2 s of signal for the spectrum…" : "Waiting for data…");
      return;
    }
    setOverlay(null);
    drawSpectrum(view.ctx, spectrum, { ...view, names: status.meta.channels || [],
      units: status.meta.units || "", mode: $("spectrum-mode").value });
  } else if (status.view === "bands") {
    if (!bandState || !bandState.rows.length) {
      setOverlay(status.bandsTopic ? `Waiting for “${status.bandsTopic}”…`
        : "No band-power topic: start a pipeline with a band_power stage (eegpi start spectrum).");
      return;
    }
    setOverlay(null);
    drawBands(view.ctx, bandState, { ...view, mode: $("bands-mode").value });
  }
}

function updateSpectrum() {
  if (paused || !sig || !status.meta) return;
  spectrum = computeSpectrum(sig);
  if (!spectrum) return;
  status.spectrum = {
    peakHz: spectrum.peakHz,
    peaks: spectrum.peaks,
    resolutionHz: spectrum.resolution,
    channels: (status.meta.channels || []).slice(),
    fromSeq: status.lastSeq - spectrum.samples, // the oldest sample it covers
    meanLog10: Array.from(spectrum.mean, (v) => Math.round(Math.log10(Math.max(v, 1e-30)) * 100) / 100),
  };
  $("plot").dataset.peakHz = spectrum.peakHz === null ? "" : spectrum.peakHz.toFixed(2);
}

// ---- page ---------------------------------------------------------------------------------

function setView(view) {
  status.view = view;
  document.body.dataset.view = view;
  for (const tab of document.querySelectorAll(".tabs [data-view]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === view));
  }
  $("impedance-view").hidden = view !== "impedance";
  $("plot").hidden = view === "impedance";
  if (view === "impedance") setOverlay(null);
  const url = new URL(location.href);
  url.searchParams.set("view", view);
  history.replaceState(null, "", url);
}

function showStreamFacts(meta) {
  $("s-rate").textContent = meta ? fmt(meta.sample_rate) : "–";
  $("s-channels").textContent = meta ? meta.channels.length : "–";
  $("s-units").textContent = meta ? meta.units : "–";
}

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
  overlay.hidden = !text || status.view === "impedance"; // the tiles say what they wait for
  if (text) overlay.textContent = text;
}

function showMessage(text, isError) {
  const el = $("message");
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

$("topic").addEventListener("change", (e) => {
  chosen = e.target.value;
  if (chosen && chosen !== status.topic) selectSignal(chosen);
});
$("bands-topic").addEventListener("change", (e) => {
  status.bandsTopic = e.target.value || null;
  bandState = null;
  status.bands = null;
  syncSubscriptions();
});
$("window").addEventListener("change", () => {
  if (sig) sig = new SignalBuffer(sig.channels, sig.rate, Number($("window").value));
});
$("pause").addEventListener("click", (e) => {
  paused = !paused;
  e.target.textContent = paused ? "Resume" : "Pause";
  e.target.classList.toggle("active", paused);
});
$("settings").addEventListener("click", (e) => {
  const open = $("controls").hidden;
  $("controls").hidden = !open;
  e.target.setAttribute("aria-expanded", String(open));
});
for (const tab of document.querySelectorAll(".tabs [data-view]")) {
  tab.addEventListener("click", () => setView(tab.dataset.view));
}
$("auth").addEventListener("submit", (e) => {
  e.preventDefault();
  conn.setToken($("token").value.trim());
  $("auth").hidden = true;
  conn.connect();
});
setInterval(() => conn.send({ list_topics: true }), 5000);
setInterval(updateSpectrum, SPECTRUM_EVERY_MS);

setView(status.view);
conn.connect();
requestAnimationFrame(draw);
