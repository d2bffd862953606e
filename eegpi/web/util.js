// Small helpers the viewer's modules share: element lookup, number and clock formats, canvas
// sizing. No dependencies, so the page runs from the appliance alone.

export const PALETTE = ["#4fc3f7", "#81c784", "#ffb74d", "#e57373", "#ba68c8", "#4db6ac",
  "#fff176", "#f06292", "#90a4ae", "#aed581", "#7986cb", "#ff8a65"];

export const $ = (id) => document.getElementById(id);

export function colour(index) {
  return PALETTE[index % PALETTE.length];
}

/** A number as people read it on a scale: integers whole, small values with 2 digits. */
export function fmt(x) {
  if (!Number.isFinite(x)) return "–";
  return Math.abs(x) >= 100 || Number.isInteger(x) ? String(Math.round(x)) : x.toPrecision(2);
}

/** Local wall-clock time of a Unix timestamp, HH:MM:SS (24 h), as on the bench's clock. */
export function clockTime(unixSeconds) {
  const d = new Date(unixSeconds * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** Size a canvas's backing store to its CSS box at the device's pixel ratio. */
export function fitCanvas(canvas) {
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
  return { ctx, width, height, dpr };
}

/** Width of the label column: narrower on a phone, where every pixel of trace counts. */
export function labelWidth(dpr) {
  return Math.round((window.innerWidth < 600 ? 64 : 96) * dpr);
}
