// Pieces both load generators use (worker.mjs for Phoenix / socket.io, pusher_worker.mjs for
// pusher-js): the clock, the JSON-lines output, the latency histogram, Pusher's HTTP signing and
// a bare keep-alive HTTP/1.1 connection.

import { createHmac, createHash } from "node:crypto";
import net from "node:net";

export const now = () => performance.timeOrigin + performance.now();
export const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Log-bucketed histogram (1 % resolution) of milliseconds; merged by the runner.
const BASE = 0.01;
const LOG_STEP = Math.log(1.01);
export class Hist {
  constructor() { this.b = new Map(); this.n = 0; this.max = 0; this.sum = 0; }
  add(ms) {
    const v = ms < BASE ? BASE : ms;
    const i = Math.ceil(Math.log(v / BASE) / LOG_STEP);
    this.b.set(i, (this.b.get(i) || 0) + 1);
    this.n++; this.sum += ms; if (ms > this.max) this.max = ms;
  }
  toJSON() { return { n: this.n, max: this.max, sum: this.sum, b: Object.fromEntries(this.b) }; }
}

// Pusher's request signing (PUSHER_PROTOCOL.md §9): every parameter but auth_signature, keys
// lower-cased and sorted, joined unescaped; body_md5 when there is a body.
export function pusherQuery(method, path, key, secret, params, body = null) {
  const all = [...params, ["auth_key", key], ["auth_timestamp", String(Math.floor(Date.now() / 1000))],
    ["auth_version", "1.0"]];
  if (body !== null) all.push(["body_md5", createHash("md5").update(body).digest("hex")]);
  const sorted = all.map(([k, v]) => [k.toLowerCase(), v]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const text = `${method}\n${path}\n${sorted.map(([k, v]) => `${k}=${v}`).join("&")}`;
  all.push(["auth_signature", createHmac("sha256", secret).update(text).digest("hex")]);
  return new URLSearchParams(all).toString();
}

// A keep-alive HTTP/1.1 connection, one request at a time (or one, if the server closes it):
// undici's fetch cost the generator more CPU per request than the server spent answering it.
export class HttpConn {
  constructor(host, port) {
    this.sock = net.connect({ host, port, noDelay: true });
    this.buf = Buffer.alloc(0); this.pending = null; this.closed = false;
    this.sock.on("data", (d) => { this.buf = Buffer.concat([this.buf, d]); this.parse(); });
    const fail = () => { this.closed = true; if (this.pending) { const p = this.pending; this.pending = null; p(null); } };
    this.sock.on("error", fail); this.sock.on("close", fail);
  }
  parse() {
    if (!this.pending) return;
    const end = this.buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    const head = this.buf.subarray(0, end).toString("latin1");
    const m = /content-length: *(\d+)/i.exec(head);
    const total = end + 4 + (m ? Number(m[1]) : 0);
    if (this.buf.length < total) return;
    this.buf = this.buf.subarray(total);
    // A server that ends each answer with `Connection: close` (soketi's uWebSockets.js does)
    // gets a new connection for the next request. It closes first (so the TIME_WAIT is on its
    // side, not on this side's ephemeral ports); the timer only bounds a server that does not.
    if (/^connection: *close/im.test(head)) {
      this.closed = true;
      setTimeout(() => this.sock.destroy(), 1000).unref();
    }
    const p = this.pending; this.pending = null;
    p(Number(head.slice(9, 12)));
  }
  request(text) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.closed = true; this.sock.destroy(); }, 10_000);
      this.pending = (code) => { clearTimeout(timer); resolve(code); };
      this.sock.write(text);
    });
  }
  close() { this.sock.destroy(); }
}
