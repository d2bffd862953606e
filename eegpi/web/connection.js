// The WebSocket to /ws/data: token handling, reconnects, and decoding of binary data frames.
// When the appliance requires a token, the page asks for it once per browser tab (kept in
// sessionStorage) and offers it as the subprotocol "eegpi.bearer.<base64url>" beside "eegpi.v1":
// browsers cannot set an Authorization header on a WebSocket.

const TOKEN_KEY = "eegpi.token";

function base64url(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Decode a binary data message (docs/API.md, "Data messages (binary)").
 * Returns null for a frame with another header, which the page reports instead of drawing.
 */
export function decodeBinary(buf) {
  const dv = new DataView(buf);
  if (buf.byteLength < 32 || dv.getUint32(0, false) !== 0x45475049) return null; // "EGPI"
  const headerLen = dv.getUint16(6, true);
  const n = dv.getUint32(24, true);
  const c = dv.getUint16(28, true);
  const topicLen = dv.getUint16(30, true);
  return {
    topic: new TextDecoder().decode(new Uint8Array(buf, 32, topicLen)),
    seq: Number(dv.getBigUint64(8, true)),
    timestamp: dv.getFloat64(16, true),
    n,
    c,
    values: new Float32Array(buf, headerLen, n * c),
  };
}

/**
 * One connection that reconnects by itself. `handlers` gets onOpen(), onClose(event, retryMs),
 * onText(string), onBinary(ArrayBuffer) and onAuth(rejected) when a token is needed.
 */
export class Connection {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.retryMs = 500;
    this.token = sessionStorage.getItem(TOKEN_KEY) || null;
    this.protocol = null;
  }

  async connect() {
    // A refused WebSocket shows the page no HTTP status, so ask /healthz (same checks) first.
    let probe = 0;
    try {
      const reply = await fetch("/healthz", {
        cache: "no-store",
        headers: this.token ? { Authorization: `Bearer ${this.token}` } : {},
      });
      probe = reply.status;
    } catch (e) {
      probe = 0; // unreachable: the WebSocket attempt below fails and retries
    }
    if (probe === 401) {
      this.handlers.onAuth(Boolean(this.token));
      return;
    }
    const protocols = this.token ? [`eegpi.bearer.${base64url(this.token)}`, "eegpi.v1"] : [];
    const ws = new WebSocket(this.url, protocols);
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.protocol = ws.protocol || null;
      this.retryMs = 500;
      this.handlers.onOpen();
    };
    ws.onclose = (event) => {
      const wait = this.retryMs;
      this.handlers.onClose(event, wait);
      setTimeout(() => this.connect(), wait);
      this.retryMs = Math.min(this.retryMs * 2, 8000);
    };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") this.handlers.onText(event.data);
      else this.handlers.onBinary(event.data);
    };
  }

  setToken(token) {
    this.token = token || null;
    if (this.token) sessionStorage.setItem(TOKEN_KEY, this.token);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }
}
