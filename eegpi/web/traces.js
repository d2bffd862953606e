// Time traces: a ring of the last seconds of every channel with each slot's wall-clock time,
// and the drawing of it (electrode names, scales, an absolute time axis, markers, and marks for
// railed or lead-off channels).

import { clockTime, colour, fmt, labelWidth } from "./util.js";

const MAX_SAMPLES = 250000; // per channel, whatever the window and rate

/** The newest `seconds` of a stream; lost samples are NaN slots, so time stays linear. */
export class SignalBuffer {
  constructor(channels, rate, seconds) {
    this.channels = channels;
    this.rate = rate;
    this.cap = Math.max(2, Math.min(MAX_SAMPLES, Math.ceil(rate * seconds)));
    this.buffers = [];
    for (let ch = 0; ch < channels; ch++) this.buffers.push(new Float32Array(this.cap).fill(NaN));
    this.write = 0; // next slot to write; the oldest slot once the ring is full
    this.filled = 0;
    this.total = 0;
    this.newestTime = null; // Unix seconds of the newest slot
    this.scales = [];
  }

  /** Append `n` samples; value(i, ch) reads sample i of channel ch; t0 is sample 0's time. */
  push(n, value, t0) {
    for (let i = 0; i < n; i++) {
      for (let ch = 0; ch < this.channels; ch++) this.buffers[ch][this.write] = value(i, ch);
      this.advance();
    }
    if (n > 0) this.newestTime = t0 + (n - 1) / this.rate;
  }

  /** Leave `count` empty slots for samples that never came. */
  pushGap(count) {
    const slots = Math.min(count, this.cap);
    for (let i = 0; i < slots; i++) {
      for (const buf of this.buffers) buf[this.write] = NaN;
      this.advance();
    }
    if (this.newestTime !== null) this.newestTime += count / this.rate;
  }

  advance() {
    this.write = (this.write + 1) % this.cap;
    this.filled = Math.min(this.filled + 1, this.cap);
    this.total += 1;
  }

  /** The newest `count` slots of a channel, oldest first (NaN where samples were lost). */
  latest(ch, count) {
    const n = Math.min(count, this.filled);
    const out = new Float32Array(n);
    const buf = this.buffers[ch];
    for (let i = 0; i < n; i++) out[i] = buf[(this.write - n + i + this.cap) % this.cap];
    return out;
  }
}

function rangeOf(buf, cap) {
  let sum = 0, count = 0, min = Infinity, max = -Infinity;
  const step = Math.max(1, Math.floor(cap / 4000));
  for (let i = 0; i < cap; i += step) {
    const v = buf[i];
    if (Number.isFinite(v)) { sum += v; count++; if (v < min) min = v; if (v > max) max = v; }
  }
  const center = count ? sum / count : 0;
  // a flat line (a railed channel) gets a scale of a thousandth of its level, not of noise
  const floor = Math.max(1e-3, Math.abs(center) * 1e-3);
  const spread = count ? Math.max(Math.abs(max - center), Math.abs(min - center), floor) * 1.1 : 1;
  return { center, spread };
}

/**
 * Half-height of each row in the stream's units. "auto": per channel; "common": one scale for
 * all (the largest), so amplitudes compare across electrodes; a number: that fixed scale.
 * Auto scales grow at once and shrink slowly: stable traces without clipping.
 */
function scalesFor(sig, mode) {
  const ranges = sig.buffers.map((buf) => rangeOf(buf, sig.cap));
  const smooth = (ch, target) => {
    const prev = sig.scales[ch] || target;
    const half = target > prev ? target : prev * 0.98 + target * 0.02;
    sig.scales[ch] = half;
    return half;
  };
  if (typeof mode === "number") return ranges.map((r) => ({ center: r.center, half: mode }));
  if (mode === "common") {
    const widest = Math.max(...ranges.map((r) => r.spread));
    const half = smooth(0, widest);
    return ranges.map((r) => ({ center: r.center, half }));
  }
  return ranges.map((r, ch) => ({ center: r.center, half: smooth(ch, r.spread) }));
}

function drawTrace(ctx, sig, buf, left, plotW, mid, gain, center, ch, dpr) {
  const cap = sig.cap;
  const start = sig.write; // oldest slot of the ring
  const perPx = cap / plotW;
  ctx.strokeStyle = colour(ch);
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

/** Grid lines on whole wall-clock seconds, labelled with the local time. */
function drawTimeAxis(ctx, sig, left, plotW, height, dpr, xOf) {
  const span = sig.cap / sig.rate;
  const step = span <= 6 ? 1 : span <= 12 ? 2 : 5;
  const labels = [];
  ctx.strokeStyle = "#1f2a36";
  ctx.fillStyle = "#6b7a8b";
  ctx.lineWidth = 1;
  ctx.font = `${Math.round(10 * dpr)}px system-ui, sans-serif`;
  ctx.textBaseline = "bottom";
  const oldest = sig.newestTime - (sig.cap - 1) / sig.rate;
  for (let t = Math.ceil(oldest / step) * step; t <= sig.newestTime; t += step) {
    const x = Math.round(xOf(t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, height);
    ctx.stroke();
    const text = clockTime(t);
    if (x + ctx.measureText(text).width < left + plotW) ctx.fillText(text, x + 3 * dpr, height - 2 * dpr);
    labels.push(text);
  }
  return labels;
}

function drawMarkers(ctx, markers, left, plotW, height, dpr, xOf) {
  const drawn = [];
  ctx.font = `${Math.round(11 * dpr)}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const marker of markers) {
    const x = Math.round(xOf(marker.timestamp)) + 0.5;
    if (x < left || x > left + plotW) continue;
    ctx.strokeStyle = "#ffd54f";
    ctx.lineWidth = Math.max(1, dpr);
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, height);
    ctx.stroke();
    ctx.setLineDash([]);
    const text = marker.label;
    const w = ctx.measureText(text).width + 6 * dpr;
    const tx = Math.min(x + 2 * dpr, left + plotW - w);
    ctx.fillStyle = "rgba(15, 20, 25, 0.85)";
    ctx.fillRect(tx, 2 * dpr, w, 16 * dpr);
    ctx.fillStyle = "#ffd54f";
    ctx.fillText(text, tx + 3 * dpr, 4 * dpr);
    drawn.push(text);
  }
  return drawn;
}

function drawFlag(ctx, text, x, y, fill, dpr) {
  ctx.font = `bold ${Math.round(9 * dpr)}px system-ui, sans-serif`;
  const w = ctx.measureText(text).width + 6 * dpr;
  ctx.fillStyle = fill;
  ctx.fillRect(x, y - 6 * dpr, w, 12 * dpr);
  ctx.fillStyle = "#111";
  ctx.fillText(text, x + 3 * dpr, y);
  return x + w + 4 * dpr; // where the next flag goes
}

/**
 * Draw every channel of `sig` on the canvas context. Returns what was drawn (channel labels,
 * time labels, markers shown, each row's scale) so people and tests can read it back.
 */
export function drawTraces(ctx, sig, { width, height, dpr, names, units, scale, flags, markers }) {
  const left = labelWidth(dpr);
  const plotW = width - left - Math.round(8 * dpr);
  const rowH = height / sig.channels;
  const span = (sig.cap - 1) / sig.rate;
  const xOf = (t) => left + ((t - (sig.newestTime - span)) / span) * plotW;
  const timeLabels = sig.newestTime === null ? [] : drawTimeAxis(ctx, sig, left, plotW, height, dpr, xOf);
  const scales = scalesFor(sig, scale);
  const labels = [];
  ctx.textBaseline = "middle";
  for (let ch = 0; ch < sig.channels; ch++) {
    const mid = rowH * (ch + 0.5);
    const { center, half } = scales[ch];
    ctx.strokeStyle = "#1c2631";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left, Math.round(rowH * (ch + 1)) + 0.5);
    ctx.lineTo(left + plotW, Math.round(rowH * (ch + 1)) + 0.5);
    ctx.stroke();
    const name = names[ch] || `ch${ch + 1}`;
    labels.push(name);
    ctx.font = `${Math.round(12 * dpr)}px system-ui, sans-serif`;
    ctx.fillStyle = colour(ch);
    ctx.fillText(name, 6 * dpr, mid - 7 * dpr);
    ctx.font = `${Math.round(10 * dpr)}px system-ui, sans-serif`;
    ctx.fillStyle = "#7f8fa3";
    ctx.fillText(`±${fmt(half)} ${units}`, 6 * dpr, mid + 7 * dpr);
    const flag = flags[name] || {};
    let fx = left + 4 * dpr;
    if (flag.leadOff) fx = drawFlag(ctx, "LEAD OFF", fx, mid, "#ffb74d", dpr);
    if (flag.railed) drawFlag(ctx, "RAILED", fx, mid, "#ef5350", dpr);
    drawTrace(ctx, sig, sig.buffers[ch], left, plotW, mid, (rowH * 0.45) / half, center, ch, dpr);
  }
  const shown = sig.newestTime === null ? [] : drawMarkers(ctx, markers, left, plotW, height, dpr, xOf);
  return { labels, timeLabels, markers: shown, scales: scales.map((s) => s.half) };
}
