// Live parameters of the pipeline that publishes the viewed topic: `get_params` lists its
// stages, their values and which of them may change while it runs (`live`); `update_stage`
// changes them (docs/API.md, "Live parameters"). Filters get number fields, the notch a
// 50 / 60 / off choice, the source a gain and an input choice, other params a field of their
// kind (lists and maps, e.g. band_power's bands, as JSON).

import { clockTime } from "./util.js";

const GAINS = [1, 2, 4, 6, 8, 12, 24];
const INPUTS = ["normal", "shorted", "test", "temperature", "supply", "bias_meas", "off"];
const SOURCE_FIELDS = ["gain", "input"];
const LOG_LINES = 8;

function field(id, labelText, input) {
  const label = document.createElement("label");
  label.className = "ctl-field";
  label.htmlFor = id;
  label.textContent = labelText;
  input.id = id;
  label.append(input);
  return label;
}

function select(options, value) {
  const el = document.createElement("select");
  for (const [text, v] of options) el.add(new Option(text, v, false, String(v) === String(value)));
  return el;
}

function scalarInput(value) {
  const el = document.createElement("input");
  if (typeof value === "boolean") {
    el.type = "checkbox";
    el.checked = value;
  } else {
    el.type = typeof value === "number" ? "number" : "text";
    if (typeof value === "number") el.step = "any";
    el.value = String(value);
  }
  return el;
}

/** The inputs of one stage's live params: [{key, el, read()}], read() giving what to send. */
function inputsFor(stage) {
  const all = stage.params || {};
  const live = Array.isArray(stage.live) ? stage.live : Object.keys(all);
  const p = Object.fromEntries(Object.entries(all).filter(([k]) => live.includes(k)));
  if (stage.type === "notch") {
    const mains = p.enabled === false ? "off" : String(p.freq_hz);
    const choice = select([["50 Hz", "50"], ["60 Hz", "60"], ["off", "off"]], mains);
    if (![...choice.options].some((o) => o.selected)) choice.add(new Option(`${p.freq_hz} Hz`, String(p.freq_hz), true, true));
    const rest = Object.keys(p).filter((k) => !["freq_hz", "enabled"].includes(k));
    return [{ key: "mains", label: "mains notch", el: choice,
      read: () => (choice.value === "off" ? { enabled: false } : { enabled: true, freq_hz: Number(choice.value) }) },
    ...rest.map((k) => plain(stage, k))];
  }
  if (stage.type === "ads1299_source") {
    return SOURCE_FIELDS.filter((k) => k in p).map((key) => {
      const current = Array.isArray(p[key]) ? p[key][0] : p[key];
      const values = key === "gain" ? GAINS : INPUTS;
      const el = select(values.map((v) => [key === "gain" ? `×${v}` : v, v]), current);
      return { key, label: key, el, read: () => ({ [key]: key === "gain" ? Number(el.value) : el.value }) };
    });
  }
  return Object.keys(p).map((k) => plain(stage, k));
}

function plain(stage, key) {
  const original = stage.params[key];
  if (original !== null && typeof original === "object") {
    const el = document.createElement("input");
    el.type = "text";
    el.className = "ctl-json";
    el.value = JSON.stringify(original);
    return { key, label: `${key} (JSON)`, el, read: () => {
      try { return { [key]: JSON.parse(el.value) }; } catch (e) { return { [key]: undefined }; }
    } };
  }
  const el = scalarInput(original);
  return { key, label: key, el, read: () => {
    if (typeof original === "boolean") return { [key]: el.checked };
    if (typeof original === "number") return { [key]: el.value.trim() === "" ? NaN : Number(el.value) };
    return { [key]: el.value };
  } };
}

function changed(current, wanted) {
  const out = {};
  for (const [k, v] of Object.entries(wanted)) {
    const now = Array.isArray(current[k]) && !Array.isArray(v) ? current[k][0] : current[k];
    if (JSON.stringify(now) !== JSON.stringify(v)) out[k] = v;
  }
  return out;
}

/** The control panel; `send(obj)` sends a command on the page's WebSocket. */
export class Controls {
  constructor(root, send) {
    this.root = root;
    this.send = send;
    this.state = { pipeline: null, stages: [], supported: null, updates: 0, last: null,
      lastError: null, log: [] };
    this.waiting = null; // "params" or "update" while a reply is due
    this.asked = null; // {stage, keys} of the last update_stage sent
  }

  /** Ask for the live params of `pipeline` (null: say there is nothing to control). */
  load(pipeline) {
    this.state.pipeline = pipeline;
    this.state.stages = [];
    if (!pipeline) {
      this.render("This topic names no pipeline: nothing to control here.");
      return;
    }
    this.waiting = "params";
    this.send({ get_params: { pipeline } });
    this.render("Loading…");
  }

  /** A reply from the server; true when it was this panel's. */
  onMessage(msg) {
    if ("params" in msg) {
      if (msg.params.pipeline !== this.state.pipeline) return true;
      this.waiting = null;
      this.state.supported = true;
      this.state.stages = msg.params.stages || [];
      this.state.running = msg.params.running !== false;
      this.render();
      return true;
    }
    if ("stage_updated" in msg) {
      const up = msg.stage_updated;
      this.waiting = null;
      this.state.updates += 1;
      this.state.last = up;
      this.state.lastError = null;
      const stage = this.state.stages.find((s) => s.name === up.stage);
      if (stage && up.pipeline === this.state.pipeline) stage.params = up.params;
      const asked = this.asked && this.asked.stage === up.stage ? this.asked.keys : Object.keys(up.params);
      const shown = asked.map((k) => `${k}=${JSON.stringify(up.params[k])}`).join(", ");
      this.note(`${up.stage}: applied ${shown}`);
      this.render();
      return true;
    }
    if ("error" in msg && this.waiting) {
      const { code, message } = msg.error;
      const mine = code === "update_refused" || code === "params_refused" || code === "unknown_command" ||
        (code === "bad_request" && /get_params|update_stage/.test(message));
      if (!mine) return false;
      const was = this.waiting;
      this.waiting = null;
      this.state.lastError = { code, message };
      if (code === "unknown_command") {
        this.state.supported = false;
        this.render("This eegpi cannot change parameters while a pipeline runs.");
      } else {
        this.note(`refused: ${message}`, true);
        this.render(was === "params" ? message : undefined); // the fields show what runs
      }
      return true;
    }
    return false;
  }

  /** A stream's meta changed (gain, filter settings): shown in the log as it takes effect. */
  onMeta(topic, before, after) {
    const keys = new Set([...Object.keys(before || {}), ...Object.keys(after || {})]);
    const diff = [...keys].filter((k) => JSON.stringify((before || {})[k]) !== JSON.stringify((after || {})[k]));
    this.note(`${topic}: new meta (${diff.join(", ") || "same values"})`);
  }

  note(text, isError = false) {
    this.state.log.push({ time: Date.now() / 1000, text, error: isError });
    if (this.state.log.length > LOG_LINES) this.state.log.shift();
    this.renderLog();
  }

  apply(stage, inputs) {
    let wanted = {};
    for (const input of inputs) wanted = { ...wanted, ...input.read() };
    const bad = Object.entries(wanted).find(([, v]) => v === undefined || (typeof v === "number" && !Number.isFinite(v)));
    if (bad) {
      this.note(`${stage.name}: ${bad[0]} must be ${bad[1] === undefined ? "valid JSON" : "a number"}`, true);
      return;
    }
    const params = changed(stage.params, wanted);
    if (!Object.keys(params).length) {
      this.note(`${stage.name}: nothing changed`);
      return;
    }
    this.waiting = "update";
    this.asked = { stage: stage.name, keys: Object.keys(params) };
    this.send({ update_stage: { pipeline: this.state.pipeline, stage: stage.name, params } });
    this.note(`${stage.name}: asking for ${JSON.stringify(params)}`);
  }

  render(notice) {
    const list = this.root.querySelector(".ctl-stages");
    const title = this.root.querySelector(".ctl-title");
    title.textContent = !this.state.pipeline ? "Live parameters"
      : `Pipeline “${this.state.pipeline}”${this.state.running === false ? " (not running)" : ""}`;
    list.replaceChildren();
    if (notice) {
      const p = document.createElement("p");
      p.className = "ctl-notice";
      p.textContent = notice;
      list.append(p);
    }
    for (const stage of this.state.stages) {
      const inputs = inputsFor(stage);
      if (!inputs.length) continue;
      const form = document.createElement("form");
      form.className = "ctl-stage";
      form.id = `ctl-${stage.name}`;
      const legend = document.createElement("div");
      legend.className = "ctl-legend";
      legend.textContent = `${stage.name} (${stage.type})`;
      form.append(legend);
      for (const input of inputs) form.append(field(`ctl-${stage.name}-${input.key}`, input.label, input.el));
      const button = document.createElement("button");
      button.type = "submit";
      button.id = `ctl-${stage.name}-apply`;
      button.textContent = "Apply";
      form.append(button);
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        this.apply(stage, inputs);
      });
      list.append(form);
    }
    this.renderLog();
  }

  renderLog() {
    const log = this.root.querySelector(".ctl-log");
    log.replaceChildren(...this.state.log.map((line) => {
      const li = document.createElement("li");
      li.textContent = `${clockTime(line.time)} ${line.text}`;
      if (line.error) li.className = "error";
      return li;
    }));
  }
}
