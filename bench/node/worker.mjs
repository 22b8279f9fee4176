// One load-generator process for `make bench` (bench/run.py starts several).
//
// It speaks JSON lines: commands on stdin, one answer line per command on stdout ({"ev": ...}).
// Two client drivers: "phoenix" (the official phoenix 1.8.16 client over `ws`; used against Parley
// and the bare trio hub) and "socketio" (socket.io-client, against the python-socketio peer).
//
//   {"cmd":"open", driver, url, conns:[{token?, topics:[...], send_topic?}], rate, heartbeat_ms}
//       open the connections at `rate` per second, join every topic; answer when all are settled
//   {"cmd":"step", step, rate, duration_s, drain_ms}
//       send `new_msg` from the connections that have a send_topic, round robin, at `rate`/s for
//       duration_s; wait for the acks (bounded) and drain_ms; answer with this process's sender
//       and receiver figures for that step (receivers count every `new_msg` tagged with the step)
//   {"cmd":"spread", on}           track first/last receive time per message (fan-out spread)
//   {"cmd":"hb"}                   heartbeat RTT histogram since the last "hb", drops, loop delay
//   {"cmd":"logins", url, creds, rate, count[, timed_status]}   POST /api/auth/login (rate 0 = all
//                                  at once); latency of 2xx answers, or of `timed_status` ones
//   {"cmd":"search", base, urls:[[shape, path]], rate, duration_s}
//       GET base+path at `rate`/s for duration_s, open loop (each request leaves at its due time
//       whatever the earlier ones do; latency counts from that due time), cycling through `urls`;
//       answer with the latency histogram, one per shape, statuses and requests skipped because
//       MAX_SEARCH_INFLIGHT were still waiting
//   {"cmd":"trigger", base, path, key, secret, channels:[...], rate, duration_s, step, drain_ms}
//       POST base+path (the trigger API) at `rate`/s for duration_s, open loop over keep-alive
//       HTTP/1.1 connections (one request at a time each; more opened while all are busy), each request Pusher-signed with key/secret (PUSHER_PROTOCOL.md §9), round
//       robin over `channels`, its data the query `step`, `t` (send time), `k` (a key); answer
//       with statuses, HTTP latency, and this process's subscribers' `bench` events of the step
//       (a connection spec's `events` lists the events it counts besides new_msg)
//   {"cmd":"close"}                close everything and exit
//
// Every loop is bounded: connections and messages by the command's counts, waits by timeouts, and
// the process exits when stdin closes or after MAX_LIFETIME_MS. Only the URLs it is given (the
// runner passes 127.0.0.1) are contacted.

import readline from "node:readline";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Socket } from "phoenix";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { Hist, HttpConn, now, out, pusherQuery, sleep } from "./common.mjs";

const MAX_LIFETIME_MS = 3 * 3600 * 1000;
const ACK_TIMEOUT_MS = 10_000;
const JOIN_TIMEOUT_MS = 20_000;
const NEVER = 1e9; // ms: no automatic reconnect or rejoin, so a drop is counted, not hidden

// The `ws` client offers permessage-deflate by default; servers here run without it.
class PlainWS extends WebSocket {
  constructor(url, protocols) { super(url, protocols, { perMessageDeflate: false }); }
}

const state = {
  conns: [],
  drops: 0,
  hb: new Hist(),
  steps: new Map(), // step -> {recv, lat: Hist}
  spread: null, // key -> [first, last, count]
  loop: monitorEventLoopDelay({ resolution: 10 }),
  closing: false,
};
state.loop.enable();

function stepStats(step) {
  let s = state.steps.get(step);
  if (!s) { s = { recv: 0, echo: 0, lat: new Hist() }; state.steps.set(step, s); }
  return s;
}

// Body: "<step>|<send time ms>|<message key>|<sender connection id>".
function onNewMsg(conn, payload) {
  const t = now();
  const body = payload && payload.body;
  if (typeof body !== "string") return;
  const parts = body.split("|");
  if (parts.length < 4) return;
  const s = stepStats(parts[0]);
  if (parts[3] === conn.id) s.echo++; // the sender's own copy: a delivery, not in the latency
  else { s.recv++; s.lat.add(t - Number(parts[1])); }
  if (state.spread) {
    const e = state.spread.get(parts[2]);
    if (e === undefined) state.spread.set(parts[2], [t, t, 1]);
    else { if (t < e[0]) e[0] = t; if (t > e[1]) e[1] = t; e[2]++; }
  }
}

// A triggered event's payload: {step, t: send time ms, k: message key} (query data: strings).
function onAppEvent(payload) {
  const t = now();
  if (!payload || typeof payload.step !== "string") return;
  const s = stepStats(payload.step);
  s.recv++; s.lat.add(t - Number(payload.t));
}

let connSeq = 0;

class PhoenixConn {
  constructor(url, spec, heartbeatMs) {
    this.id = `${process.pid}.${++connSeq}`;
    this.spec = spec; this.open = false; this.channels = new Map();
    const params = spec.token ? { token: spec.token } : {};
    this.socket = new Socket(url, {
      transport: PlainWS, params, heartbeatIntervalMs: heartbeatMs, timeout: ACK_TIMEOUT_MS,
      reconnectAfterMs: () => NEVER, rejoinAfterMs: () => NEVER,
    });
    // Heartbeat RTT: phoenix.js 1.8 has no heartbeat callback, so time its own heartbeat pushes.
    const sock = this.socket;
    const send = sock.sendHeartbeat.bind(sock);
    let hbRef = null, hbAt = 0;
    sock.sendHeartbeat = () => {
      send();
      if (sock.pendingHeartbeatRef) { hbRef = sock.pendingHeartbeatRef; hbAt = now(); }
    };
    sock.onMessage((msg) => {
      if (msg.topic === "phoenix" && msg.ref === hbRef) { state.hb.add(now() - hbAt); hbRef = null; }
    });
    sock.onClose(() => { if (this.open && !state.closing) state.drops++; this.open = false; });
  }
  connect() {
    return new Promise((resolve) => {
      const started = now();
      let pending = this.spec.topics.length, failed = false, done = false;
      const finish = (ok, why) => {
        if (done) return; done = true; clearTimeout(timer);
        if (ok) this.open = true;
        resolve({ ok, ms: now() - started, why });
      };
      const timer = setTimeout(() => finish(false, "join timeout"), JOIN_TIMEOUT_MS);
      this.socket.onError(() => finish(false, "socket error"));
      this.socket.connect();
      for (const topic of this.spec.topics) {
        const ch = this.socket.channel(topic, {});
        ch.on("new_msg", (p) => onNewMsg(this, p));
        for (const event of this.spec.events || []) ch.on(event, onAppEvent);
        this.channels.set(topic, ch);
        ch.join(JOIN_TIMEOUT_MS)
          .receive("ok", () => { if (--pending === 0 && !failed) finish(true); })
          .receive("error", (r) => { failed = true; finish(false, "join error " + JSON.stringify(r)); })
          .receive("timeout", () => { failed = true; finish(false, "join timeout"); });
      }
    });
  }
  send(topic, body, clientId) {
    return new Promise((resolve) => {
      const t = now();
      this.channels.get(topic).push("new_msg", { body, client_id: clientId }, ACK_TIMEOUT_MS)
        .receive("ok", () => resolve({ ok: true, ms: now() - t }))
        .receive("error", (r) => resolve({ ok: false, why: JSON.stringify(r) }))
        .receive("timeout", () => resolve({ ok: false, why: "timeout" }));
    });
  }
  close() { this.open = false; this.socket.disconnect(null, 1000); }
}

class SocketIoConn {
  constructor(url, spec, heartbeatMs) {
    this.id = `${process.pid}.${++connSeq}`;
    this.spec = spec; this.open = false; this.heartbeatMs = heartbeatMs; this.timer = null;
    this.sock = io(url, { transports: ["websocket"], reconnection: false, forceNew: true,
      autoConnect: false, perMessageDeflate: false, timeout: JOIN_TIMEOUT_MS });
    this.sock.on("new_msg", (p) => onNewMsg(this, p));
    this.sock.on("disconnect", () => { if (this.open && !state.closing) state.drops++; this.open = false; });
  }
  heartbeat() {
    // Like phoenix.js: the next heartbeat goes heartbeatMs after the previous reply.
    this.timer = setTimeout(() => {
      if (!this.open) return;
      const t = now();
      this.sock.timeout(this.heartbeatMs).emit("heartbeat", {}, (err) => {
        if (err) { if (this.open && !state.closing) state.drops++; this.open = false; this.sock.disconnect(); return; }
        state.hb.add(now() - t);
        this.heartbeat();
      });
    }, this.heartbeatMs);
  }
  connect() {
    return new Promise((resolve) => {
      const started = now();
      let done = false;
      const finish = (ok, why) => {
        if (done) return; done = true; clearTimeout(timer);
        if (ok) { this.open = true; this.heartbeat(); }
        resolve({ ok, ms: now() - started, why });
      };
      const timer = setTimeout(() => finish(false, "join timeout"), JOIN_TIMEOUT_MS);
      this.sock.on("connect_error", (e) => finish(false, "connect error " + e.message));
      this.sock.on("connect", async () => {
        try {
          for (const topic of this.spec.topics) {
            await this.sock.timeout(JOIN_TIMEOUT_MS).emitWithAck("join", { topic });
          }
          finish(true);
        } catch (e) { finish(false, "join " + e.message); }
      });
      this.sock.connect();
    });
  }
  send(topic, body, clientId) {
    return new Promise((resolve) => {
      const t = now();
      this.sock.timeout(ACK_TIMEOUT_MS).emit("new_msg", { topic, body, client_id: clientId }, (err) => {
        if (err) resolve({ ok: false, why: "timeout" }); else resolve({ ok: true, ms: now() - t });
      });
    });
  }
  close() { this.open = false; clearTimeout(this.timer); this.sock.disconnect(); }
}

async function cmdOpen(c) {
  const Driver = c.driver === "socketio" ? SocketIoConn : PhoenixConn;
  const url = c.url;
  const started = now();
  const join = new Hist();
  const reasons = {};
  let ok = 0, failed = 0;
  const waits = [];
  const interval = c.rate > 0 ? 1000 / c.rate : 0;
  for (let i = 0; i < c.conns.length; i++) {
    const due = started + i * interval;
    const lag = due - now();
    if (lag > 1) await sleep(lag);
    const conn = new Driver(url, c.conns[i], c.heartbeat_ms);
    state.conns.push(conn);
    waits.push(conn.connect().then((r) => {
      if (r.ok) { ok++; join.add(r.ms); }
      else { failed++; reasons[r.why] = (reasons[r.why] || 0) + 1; }
    }));
  }
  await Promise.all(waits);
  out({ ev: "opened", ok, failed, reasons, join: join.toJSON(), elapsed_ms: now() - started });
}

let clientSeq = 0;
async function cmdStep(c) {
  const senders = state.conns.filter((x) => x.spec.send_topic && x.open);
  const step = String(c.step);
  const total = Math.round(c.rate * c.duration_s);
  const ack = new Hist();
  const errors = {};
  let sent = 0, acked = 0, failed = 0, rr = 0;
  state.loop.reset();
  const started = now();
  const inflight = [];
  if (senders.length > 0 && total > 0) {
    await new Promise((resolve) => {
      const tick = () => {
        const elapsed = (now() - started) / 1000;
        const due = Math.min(total, Math.floor(c.rate * elapsed)) - sent;
        for (let i = 0; i < due; i++) {
          const conn = senders[rr++ % senders.length];
          const key = `${process.pid}-${++clientSeq}`;
          const body = `${step}|${now().toFixed(3)}|${key}|${conn.id}`;
          sent++;
          inflight.push(conn.send(conn.spec.send_topic, body, key).then((r) => {
            if (r.ok) { acked++; ack.add(r.ms); }
            else { failed++; errors[r.why] = (errors[r.why] || 0) + 1; }
          }));
        }
        if (sent >= total) resolve(); else setTimeout(tick, 2);
      };
      tick();
    });
  }
  const sendElapsed = (now() - started) / 1000;
  await Promise.all(inflight); // each settles within ACK_TIMEOUT_MS
  await sleep(c.drain_ms || 0);
  const s = stepStats(step);
  state.steps.delete(step);
  out({ ev: "step", step, sent, acked, failed, errors, ack: ack.toJSON(), send_elapsed_s: sendElapsed,
    recv: s.recv, echo: s.echo, lat: s.lat.toJSON(),
    loop: { p99: state.loop.percentile(99) / 1e6, max: state.loop.max / 1e6 } });
}

function cmdSpread(c) {
  if (c.on) { state.spread = new Map(); out({ ev: "spread" }); return; }
  const m = state.spread || new Map();
  state.spread = null;
  out({ ev: "spread", keys: Object.fromEntries(m) });
}

function cmdHb() {
  const loop = { p99: state.loop.percentile(99) / 1e6, max: state.loop.max / 1e6 };
  state.loop.reset();
  const open = state.conns.filter((x) => x.open).length;
  out({ ev: "hb", hb: state.hb.toJSON(), drops: state.drops, open, loop });
  state.hb = new Hist();
}

async function cmdLogins(c) {
  const lat = new Hist();
  const status = {};
  const started = now();
  const interval = c.rate > 0 ? 1000 / c.rate : 0;
  const waits = [];
  for (let i = 0; i < c.count; i++) {
    const due = started + i * interval;
    const lag = due - now();
    if (lag > 1) await sleep(lag);
    const cred = c.creds[i % c.creds.length];
    const t = now();
    waits.push(fetch(c.url, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(cred), signal: AbortSignal.timeout(60_000) })
      .then(async (r) => { await r.arrayBuffer(); status[r.status] = (status[r.status] || 0) + 1; if (r.ok || r.status === c.timed_status) lat.add(now() - t); })
      .catch((e) => { status[e.name] = (status[e.name] || 0) + 1; }));
  }
  await Promise.all(waits);
  out({ ev: "logins", status, lat: lat.toJSON(), elapsed_ms: now() - started });
}

const MAX_SEARCH_INFLIGHT = 2000;

async function cmdSearch(c) {
  const lat = new Hist();
  const shapes = {};
  const status = {};
  const started = now();
  const interval = 1000 / c.rate;
  const total = Math.floor(c.rate * c.duration_s);
  const waits = [];
  let inflight = 0, skipped = 0;
  for (let i = 0; i < total; i++) {
    const due = started + i * interval;
    const lag = due - now();
    if (lag > 1) await sleep(lag);
    if (inflight >= MAX_SEARCH_INFLIGHT) { skipped++; continue; }
    const [shape, path] = c.urls[i % c.urls.length];
    inflight++;
    waits.push(fetch(c.base + path, { signal: AbortSignal.timeout(10_000) })
      .then(async (r) => {
        await r.arrayBuffer();
        status[r.status] = (status[r.status] || 0) + 1;
        const ms = now() - due;
        lat.add(ms);
        (shapes[shape] ||= new Hist()).add(ms);
      })
      .catch((e) => { status[e.name] = (status[e.name] || 0) + 1; })
      .finally(() => { inflight--; }));
  }
  const sendElapsed = now() - started;
  await Promise.all(waits);
  out({
    ev: "search", status, skipped, lat: lat.toJSON(),
    shapes: Object.fromEntries(Object.entries(shapes).map(([k, h]) => [k, h.toJSON()])),
    send_elapsed_ms: sendElapsed, elapsed_ms: now() - started,
  });
}

const MAX_TRIGGER_INFLIGHT = 2000;

async function cmdTrigger(c) {
  const step = String(c.step);
  const http = new Hist();
  const status = {};
  const url = new URL(c.base);
  const idle = [];
  let opened = 0;
  const started = now();
  const interval = 1000 / c.rate;
  const total = Math.floor(c.rate * c.duration_s);
  const waits = [];
  let inflight = 0, skipped = 0, sent = 0;
  state.loop.reset();
  for (let i = 0; i < total; i++) {
    const due = started + i * interval;
    const lag = due - now();
    if (lag > 1) await sleep(lag);
    if (inflight >= MAX_TRIGGER_INFLIGHT) { skipped++; continue; }
    let conn = idle.pop();
    while (conn && conn.closed) conn = idle.pop();
    if (!conn) { conn = new HttpConn(url.hostname, Number(url.port)); opened++; }
    const channel = c.channels[i % c.channels.length];
    const query = pusherQuery("POST", c.path, c.key, c.secret, [["channel", channel], ["step", step],
      ["t", now().toFixed(3)], ["k", `${process.pid}-${i}`]]);
    inflight++; sent++;
    const t = now();
    waits.push(conn.request(`POST ${c.path}?${query} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-length: 0\r\n\r\n`)
      .then((code) => {
        const key = code === null ? "closed" : code;
        status[key] = (status[key] || 0) + 1;
        http.add(now() - t);
        inflight--;
        if (code !== null && !conn.closed) idle.push(conn);
      }));
  }
  const sendElapsed = now() - started;
  await Promise.all(waits);
  for (const conn of idle) conn.close();
  await sleep(c.drain_ms || 0);
  const s = stepStats(step);
  state.steps.delete(step);
  out({ ev: "trigger", status, skipped, sent, connections: opened, http: http.toJSON(),
    send_elapsed_ms: sendElapsed, recv: s.recv, lat: s.lat.toJSON(),
    loop: { p99: state.loop.percentile(99) / 1e6, max: state.loop.max / 1e6 } });
}

async function cmdClose() {
  state.closing = true;
  for (const c of state.conns) { try { c.close(); } catch { /* already closed */ } }
  await sleep(200);
  out({ ev: "closed" });
  process.exit(0);
}

const handlers = { open: cmdOpen, step: cmdStep, spread: cmdSpread, hb: cmdHb, logins: cmdLogins, search: cmdSearch, trigger: cmdTrigger, close: cmdClose };
let queue = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const c = JSON.parse(line);
  // Commands run one after another; the runner waits for each answer anyway.
  queue = queue.then(() => handlers[c.cmd](c)).catch((e) => out({ ev: "error", cmd: c.cmd, error: String(e && e.stack || e) }));
});
rl.on("close", () => { state.closing = true; process.exit(0); });
setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref();
out({ ev: "ready", pid: process.pid });
