// Band-power bars. A `band_power` stage's topic has one column per channel and band
// ("Fp1:delta", "Fp1:theta", ...), channel-major; its meta names the bands (`bands`, in order)
// and the channels (`source_channels`). Drawn as traces it would be 40 unreadable rows, so the
// page recognises it from that meta and draws bars: one group per channel, one bar per band.

import { fmt } from "./util.js";

export const BAND_COLOURS = ["#7986cb", "#4db6ac", "#ffd54f", "#ff8a65", "#f06292", "#aed581",
  "#90a4ae", "#ba68c8"];
const AVERAGE_ROWS = 4; // rows averaged for the bars (one second at the default 250 ms step)

/** True when a topic's meta is a band_power stage's output. */
export function isBandTopic(meta) {
  return Boolean(meta && meta.bands && typeof meta.bands === "object" &&
    Array.isArray(meta.source_channels) && meta.source_channels.length);
}

/** The latest rows of a band-power topic, averaged, as power[channel][band]. */
export class BandState {
  constructor(meta) {
    this.bands = Object.keys(meta.bands);
    this.edges = this.bands.map((b) => meta.bands[b]);
    this.channels = meta.source_channels.slice();
    this.units = meta.units || "";
    this.rows = [];
    this.total = 0;
  }

  push(n, c, value) {
    if (c !== this.bands.length * this.channels.length) return false;
    for (let i = 0; i < n; i++) {
      const row = new Float64Array(c);
      for (let k = 0; k < c; k++) row[k] = value(i, k);
      this.rows.push(row);
      this.total += 1;
    }
    if (this.rows.length > AVERAGE_ROWS) this.rows.splice(0, this.rows.length - AVERAGE_ROWS);
    return true;
  }

  /** power[ch][band], averaged over the kept rows (non-finite values skipped). */
  power() {
    const nb = this.bands.length;
    return this.channels.map((_, ch) => this.bands.map((__, b) => {
      let sum = 0, count = 0;
      for (const row of this.rows) {
        const v = row[ch * nb + b];
        if (Number.isFinite(v)) { sum += v; count++; }
      }
      return count ? sum / count : NaN;
    }));
  }

  /** What the page exposes: bands, channels, power and each channel's strongest band. */
  summary() {
    const power = this.power();
    const highest = power.map((p) => {
      let best = -1;
      p.forEach((v, b) => { if (Number.isFinite(v) && (best < 0 || v > p[best])) best = b; });
      return best < 0 ? null : this.bands[best];
    });
    return { bands: this.bands, channels: this.channels, units: this.units, rows: this.total,
      power, highest };
  }
}

/**
 * Draw the bars. mode "relative": each band's share of the channel's total (%), so channels
 * with different amplitudes compare; "log": absolute power on a log axis.
 */
export function drawBands(ctx, state, { width, height, dpr, mode }) {
  const power = state.power();
  const nb = state.bands.length, nc = state.channels.length;
  const bottom = 34 * dpr, left = 44 * dpr, right = 8 * dpr;
  ctx.font = `${Math.round(10 * dpr)}px system-ui, sans-serif`;
  // The legend wraps onto as many rows as the width needs (a phone fits two or three bands).
  const legend = [];
  let lx = left, row = 0;
  for (let b = 0; b < nb; b++) {
    const [f0, f1] = state.edges[b];
    const text = `${state.bands[b]} ${fmt(f0)}-${fmt(f1)} Hz`;
    const w = ctx.measureText(text).width + 26 * dpr;
    if (lx > left && lx + w > width - right) { row += 1; lx = left; }
    legend.push({ text, x: lx, y: (10 + 20 * row) * dpr });
    lx += w;
  }
  const legendH = 20 * (row + 1) * dpr;
  const plotH = height - legendH - bottom, plotW = width - left - right;
  const groupW = plotW / nc, barW = Math.max(1, (groupW * 0.8) / nb);
  let lo = 0, hi = 100;
  if (mode === "log") {
    const all = power.flat().filter((v) => v > 0);
    lo = all.length ? Math.floor(Math.log10(Math.min(...all))) : 0;
    hi = all.length ? Math.ceil(Math.log10(Math.max(...all))) : 1;
    if (hi <= lo) hi = lo + 1;
  }
  const yOf = (v) => legendH + plotH - ((v - lo) / (hi - lo)) * plotH;
  ctx.textBaseline = "middle";
  ctx.strokeStyle = "#1f2a36";
  ctx.fillStyle = "#6b7a8b";
  const ticks = mode === "log" ? Array.from({ length: hi - lo + 1 }, (_, i) => lo + i) : [0, 25, 50, 75, 100];
  for (const t of ticks) {
    const y = Math.round(yOf(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + plotW, y); ctx.stroke();
    ctx.fillText(mode === "log" ? `1e${t}` : `${t}%`, 4 * dpr, y);
  }
  for (let ch = 0; ch < nc; ch++) {
    const total = power[ch].reduce((s, v) => s + (Number.isFinite(v) ? v : 0), 0);
    const gx = left + ch * groupW + groupW * 0.1;
    for (let b = 0; b < nb; b++) {
      const v = power[ch][b];
      if (!Number.isFinite(v)) continue;
      const value = mode === "log" ? Math.log10(Math.max(v, 10 ** lo)) : (total > 0 ? (100 * v) / total : 0);
      const y = yOf(value);
      ctx.fillStyle = BAND_COLOURS[b % BAND_COLOURS.length];
      ctx.fillRect(gx + b * barW, y, Math.max(1, barW - dpr), legendH + plotH - y);
    }
    ctx.fillStyle = "#d6dee8";
    ctx.textBaseline = "top";
    ctx.fillText(state.channels[ch], gx, legendH + plotH + 4 * dpr);
    ctx.textBaseline = "middle";
  }
  legend.forEach(({ text, x, y }, b) => {
    ctx.fillStyle = BAND_COLOURS[b % BAND_COLOURS.length];
    ctx.fillRect(x, y - 5 * dpr, 10 * dpr, 10 * dpr);
    ctx.fillStyle = "#d6dee8";
    ctx.fillText(text, x + 14 * dpr, y);
  });
}
