// Spectrum computed in the page from the trace buffer: a Welch estimate (Hann-windowed, half
// overlapping segments of about 2 s, mean removed, averaged over the last few seconds) per
// channel, drawn as log power against frequency, overlaid or one panel per channel.

import { colour, fmt } from "./util.js";

export const SPECTRUM_SECONDS = 4;
export const F_MIN = 0.5;
export const F_MAX = 60;

/** In-place radix-2 FFT of (re, im); the length must be a power of two. */
export function fft(re, im) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const angle = (-2 * Math.PI) / len;
    const wr = Math.cos(angle), wi = Math.sin(angle);
    for (let i = 0; i < n; i += len) {
      let cr = 1, ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k, b = a + len / 2;
        const tr = re[b] * cr - im[b] * ci, ti = re[b] * ci + im[b] * cr;
        re[b] = re[a] - tr; im[b] = im[a] - ti;
        re[a] += tr; im[a] += ti;
        const next = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = next;
      }
    }
  }
}

/** Segment length: the power of two nearest 2 s of signal (0.5 Hz bins), at least 16. */
export function segmentLength(rate) {
  return Math.max(16, 2 ** Math.round(Math.log2(rate * 2)));
}

/**
 * One-sided power spectral density (units^2/Hz) of `x` by Welch's method, or null when no
 * whole segment without lost samples (NaN) is there yet.
 */
export function welch(x, rate, nperseg) {
  const window = new Float64Array(nperseg);
  let wss = 0;
  for (let i = 0; i < nperseg; i++) {
    window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / nperseg); // periodic Hann
    wss += window[i] * window[i];
  }
  const bins = nperseg / 2 + 1;
  const psd = new Float64Array(bins);
  const re = new Float64Array(nperseg), im = new Float64Array(nperseg);
  let segments = 0;
  for (let end = x.length; end - nperseg >= 0; end -= nperseg / 2) {
    const start = end - nperseg;
    let mean = 0, whole = true;
    for (let i = start; i < end; i++) {
      if (!Number.isFinite(x[i])) { whole = false; break; }
      mean += x[i];
    }
    if (!whole) continue;
    mean /= nperseg;
    for (let i = 0; i < nperseg; i++) { re[i] = (x[start + i] - mean) * window[i]; im[i] = 0; }
    fft(re, im);
    for (let k = 0; k < bins; k++) psd[k] += re[k] * re[k] + im[k] * im[k];
    segments += 1;
  }
  if (!segments) return null;
  for (let k = 0; k < bins; k++) {
    const oneSided = k === 0 || k === bins - 1 ? 1 : 2;
    psd[k] *= oneSided / (rate * wss * segments);
  }
  return psd;
}

/** Frequency of the largest value of `psd` in [lo, hi] Hz, refined between bins (parabola). */
export function peakFrequency(psd, resolution, lo, hi) {
  const first = Math.max(1, Math.ceil(lo / resolution));
  const last = Math.min(psd.length - 2, Math.floor(hi / resolution));
  let best = -1;
  for (let k = first; k <= last; k++) if (best < 0 || psd[k] > psd[best]) best = k;
  if (best < 0) return null;
  const [a, b, c] = [psd[best - 1], psd[best], psd[best + 1]].map((v) => Math.log(Math.max(v, 1e-30)));
  const denom = a - 2 * b + c;
  const shift = denom < 0 ? Math.max(-0.5, Math.min(0.5, (0.5 * (a - c)) / denom)) : 0;
  return (best + shift) * resolution;
}

/**
 * Spectra of every channel of a SignalBuffer over its last SPECTRUM_SECONDS: {resolution,
 * fMax, psd: [Float64Array|null], mean, peaks: [Hz|null], peakHz, samples (slots covered)},
 * or null before a segment.
 */
export function computeSpectrum(sig) {
  const nperseg = segmentLength(sig.rate);
  const count = Math.max(nperseg, Math.round(SPECTRUM_SECONDS * sig.rate));
  if (sig.filled < nperseg) return null;
  const resolution = sig.rate / nperseg;
  const fMax = Math.min(F_MAX, sig.rate / 2);
  const psd = [];
  for (let ch = 0; ch < sig.channels; ch++) psd.push(welch(sig.latest(ch, count), sig.rate, nperseg));
  const whole = psd.filter((p) => p !== null);
  if (!whole.length) return null;
  const mean = new Float64Array(whole[0].length);
  for (const p of whole) for (let k = 0; k < mean.length; k++) mean[k] += p[k] / whole.length;
  const peaks = psd.map((p) => (p ? peakFrequency(p, resolution, F_MIN, fMax) : null));
  const samples = Math.min(count, sig.filled);
  return { resolution, fMax, psd, mean, peaks, samples,
    peakHz: peakFrequency(mean, resolution, F_MIN, fMax) };
}

function logRange(spec) {
  let lo = Infinity, hi = -Infinity;
  const first = Math.ceil(F_MIN / spec.resolution), last = Math.floor(spec.fMax / spec.resolution);
  for (const p of [...spec.psd, spec.mean]) {
    if (!p) continue;
    for (let k = first; k <= last; k++) {
      if (p[k] > 0) { lo = Math.min(lo, p[k]); hi = Math.max(hi, p[k]); }
    }
  }
  if (!Number.isFinite(lo)) return [-3, 3];
  return [Math.floor(Math.log10(lo)), Math.ceil(Math.log10(hi))];
}

function drawPanel(ctx, spec, series, box, dpr, units, title) {
  const { x, y, w, h } = box;
  const [d0, d1] = logRange(spec);
  const xOf = (f) => x + ((f - 0) / spec.fMax) * w;
  const yOf = (p) => y + h - ((Math.log10(Math.max(p, 1e-30)) - d0) / Math.max(1, d1 - d0)) * h;
  ctx.strokeStyle = "#1f2a36";
  ctx.fillStyle = "#6b7a8b";
  ctx.lineWidth = 1;
  ctx.font = `${Math.round(10 * dpr)}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  for (let d = d0; d <= d1; d++) {
    const yy = Math.round(yOf(10 ** d)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, yy); ctx.lineTo(x + w, yy); ctx.stroke();
    ctx.fillText(`1e${d}`, x - 34 * dpr, yy);
  }
  ctx.textBaseline = "top";
  const fStep = spec.fMax > 30 ? 10 : 5;
  for (let f = 0; f <= spec.fMax; f += fStep) {
    const xx = Math.round(xOf(f)) + 0.5;
    ctx.beginPath(); ctx.moveTo(xx, y); ctx.lineTo(xx, y + h); ctx.stroke();
    ctx.fillText(`${f}`, xx + 2 * dpr, y + h + 2 * dpr);
  }
  const first = Math.ceil(F_MIN / spec.resolution), last = Math.floor(spec.fMax / spec.resolution);
  for (const { psd, colourOf, widthOf } of series) {
    if (!psd) continue;
    ctx.strokeStyle = colourOf;
    ctx.lineWidth = widthOf * dpr;
    ctx.beginPath();
    for (let k = first; k <= last; k++) {
      const px = xOf(k * spec.resolution), py = yOf(psd[k]);
      if (k === first) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    }
    ctx.stroke();
  }
  ctx.fillStyle = "#d6dee8";
  ctx.font = `${Math.round(11 * dpr)}px system-ui, sans-serif`;
  ctx.fillText(title, x + 4 * dpr, y + 2 * dpr);
  ctx.fillStyle = "#6b7a8b";
  ctx.textAlign = "right";
  ctx.fillText(`${units}²/Hz vs Hz`, x + w - 4 * dpr, y + 2 * dpr);
  ctx.textAlign = "left";
}

/** Draw the spectrum: mode "overlay" (all channels and their mean) or "grid" (one each). */
export function drawSpectrum(ctx, spec, { width, height, dpr, names, units, mode }) {
  const margin = { left: 40 * dpr, right: 10 * dpr, top: 6 * dpr, bottom: 18 * dpr };
  if (mode === "grid") {
    const n = spec.psd.length;
    const cols = width < 700 * dpr ? 2 : Math.ceil(Math.sqrt(n));
    const rows = Math.ceil(n / cols);
    const cw = width / cols, rh = height / rows;
    for (let ch = 0; ch < n; ch++) {
      const bx = (ch % cols) * cw, by = Math.floor(ch / cols) * rh;
      const peak = spec.peaks[ch];
      drawPanel(ctx, spec, [{ psd: spec.psd[ch], colourOf: colour(ch), widthOf: 1.2 }], {
        x: bx + margin.left, y: by + margin.top,
        w: cw - margin.left - margin.right, h: rh - margin.top - margin.bottom,
      }, dpr, units, `${names[ch] || `ch${ch + 1}`}  peak ${peak === null ? "–" : fmt(peak)} Hz`);
    }
    return;
  }
  const series = spec.psd.map((psd, ch) => ({ psd, colourOf: colour(ch), widthOf: 1 }));
  series.push({ psd: spec.mean, colourOf: "#ffffff", widthOf: 2 });
  const box = {
    x: margin.left, y: margin.top,
    w: width - margin.left - margin.right, h: height - margin.top - margin.bottom,
  };
  drawPanel(ctx, spec, series, box, dpr, units,
    `all channels (white: mean)  peak ${spec.peakHz === null ? "–" : spec.peakHz.toFixed(1)} Hz`);
  if (spec.peakHz !== null) {
    const xx = box.x + (spec.peakHz / spec.fMax) * box.w;
    ctx.strokeStyle = "rgba(255, 213, 79, 0.7)";
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.beginPath(); ctx.moveTo(xx, box.y); ctx.lineTo(xx, box.y + box.h); ctx.stroke();
    ctx.setLineDash([]);
  }
}
