// Impedance view: one tile per electrode with its impedance in kOhm, coloured by the grade the
// daemon gave it (good green, fair yellow, poor / lead-off / railed red), from the events of an
// `impedance` stage's topic (docs/API.md, "Impedance").

import { clockTime } from "./util.js";

/** True for the topic an impedance stage publishes (its meta's kind, or its usual name). */
export function isImpedanceTopic(name, meta) {
  if (meta && typeof meta === "object" && "kind" in meta) return meta.kind === "impedance";
  return /impedance/.test(name);
}

const GRADE_TEXT = { good: "good", fair: "fair", poor: "poor", lead_off: "lead off", railed: "railed" };

function tile(channel) {
  const el = document.createElement("div");
  el.className = `electrode grade-${channel.grade}`;
  el.dataset.name = channel.name;
  el.dataset.grade = channel.grade;
  const name = document.createElement("div");
  name.className = "electrode-name";
  name.textContent = channel.name;
  const value = document.createElement("div");
  value.className = "electrode-value";
  value.textContent = channel.kohm === null || channel.kohm === undefined ? "—"
    : `${channel.kohm >= 100 ? Math.round(channel.kohm) : channel.kohm.toFixed(1)} kΩ`;
  const grade = document.createElement("div");
  grade.className = "electrode-grade";
  grade.textContent = GRADE_TEXT[channel.grade] || channel.grade;
  el.append(name, value, grade);
  return el;
}

/** Show the newest measurement in `root` (tiles) and `info` (what and when). */
export function renderImpedance(root, info, event) {
  root.replaceChildren(...event.channels.map(tile));
  const thresholds = event.thresholds_kohm || {};
  info.textContent = `${clockTime(event.timestamp)} · ${event.frequency_hz} Hz, ` +
    `${event.current_na} nA over ${event.window_s} s · good < ${thresholds.good} kΩ, ` +
    `fair < ${thresholds.fair} kΩ`;
}

/** Per-electrode railed / lead-off flags from an impedance event, keyed by electrode name. */
export function flagsFromImpedance(event) {
  const flags = {};
  for (const ch of event.channels) {
    flags[ch.name] = { railed: Boolean(ch.railed), leadOff: Boolean(ch.lead_off) };
  }
  return flags;
}
