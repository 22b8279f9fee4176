// One pusher-js load-generator process for the Pusher workloads of `make bench` (P1-P4,
// bench/pusher_bench.py starts several). The official pusher-js 8.6.0 client for Node, pointed at
// the server as docs/pusher.md says; private and presence subscriptions are signed here with the
// app secret (standing in for the application's auth endpoint, PUSHER_PROTOCOL.md §5).
//
// It speaks JSON lines like worker.mjs: commands on stdin, one answer line per command on stdout.
//
//   {"cmd":"open", host, port, key, secret, conns:[{channels:[...], send?, user?}], rate}
//       open the connections at `rate` per second, subscribe each to its channels (`user`: the
//       presence user id, signed into channel_data); answer when all are settled
//   {"cmd":"step", step, rate, duration_s, drain_ms}
//       client events (`client-bench`) from the connections with a `send` channel, round robin, at
//       `rate`/s for duration_s, then drain_ms; answer with what this process's connections got
//   {"cmd":"trigger", host, port, app_id, key, secret, channels:[...], rate, duration_s, step, drain_ms}
//       signed `POST /apps/{app_id}/events` (the Pusher HTTP API) at `rate`/s, open loop over
//       keep-alive connections, round robin over `channels`; statuses, HTTP latency, deliveries
//   {"cmd":"state"}                open connections, drops (a connected socket that left
//                                  `connected` without being told to), subscription errors
//   {"cmd":"presence", channel}    every connection's view of a presence channel: the member
//                                  counts seen (count -> connections), anomalies (member_added
//                                  for a member already there, member_removed for one not there,
//                                  a subscription_succeeded whose ids repeat or miss the user),
//                                  and this process's join / leave times per user and when the
//                                  observer first saw each added and last saw each removed
//   {"cmd":"churn", channel, rate, duration_s, gap_ms}
//       at `rate`/s, round robin, a connection unsubscribes from `channel` and subscribes again
//       gap_ms later
//   {"cmd":"leave", rate}          disconnect every connection at `rate`/s (its members leave)
//   {"cmd":"close"}                close everything and exit
//
// Every loop is bounded by the command's counts and timeouts; the process exits when stdin closes
// or after MAX_LIFETIME_MS. Only the host it is given (the runner passes 127.0.0.1) is contacted.

import readline from "node:readline";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createHmac } from "node:crypto";
import Pusher from "pusher-js";
import { Hist, HttpConn, now, out, pusherQuery, sleep } from "./common.mjs";

const MAX_LIFETIME_MS = 3 * 3600 * 1000;
const JOIN_TIMEOUT_MS = 30_000;
const MAX_TRIGGER_INFLIGHT = 2000;
const MAX_EXAMPLES = 5; // per kind of anomaly

const state = {
  conns: [],
  drops: 0,
  subErrors: {},
  steps: new Map(), // step -> {recv, lat: Hist}
  anomalies: { dup_added: 0, absent_removed: 0, bad_succeeded: 0, examples: [] },
  joinedAt: {}, // presence user -> [subscribe sent ms, subscription_succeeded ms, count there]
  leftAt: {}, // presence user -> leave ms
  firstAdded: {}, // presence user -> first member_added seen by the observer (ms)
  lastRemoved: {}, // presence user -> latest member_removed seen by the observer (ms)
  loop: monitorEventLoopDelay({ resolution: 10 }),
  closing: false,
  phase: "open", // the presence phase going on (open, churn, leave), for the anomaly examples
};
state.loop.enable();

function stepStats(step) {
  let s = state.steps.get(step);
  if (!s) { s = { recv: 0, lat: new Hist() }; state.steps.set(step, s); }
  return s;
}

// A benchmark event's data: {s: step, t: send time ms, k: key}; from the HTTP API it is a JSON
// string that pusher-js parses.
function onBench(data) {
  const t = now();
  if (!data || typeof data.s !== "string") return;
  const s = stepStats(data.s);
  s.recv++; s.lat.add(t - Number(data.t));
}

const sign = (secret, text) => createHmac("sha256", secret).update(text).digest("hex");

function anomaly(kind, detail) {
  state.anomalies[kind]++;
  const same = state.anomalies.examples.filter((e) => e.kind === kind).length;
  if (same < MAX_EXAMPLES) state.anomalies.examples.push({ kind, at: now(), phase: state.phase, ...detail });
}

let connSeq = 0;

class PusherConn {
  constructor(c, spec) {
    this.id = `${process.pid}.${++connSeq}`;
    this.spec = spec; this.open = false; this.leaving = false;
    this.members = new Map(); // presence channel -> Set of user ids as this connection sees them
    this.pusher = new Pusher(c.key, {
      cluster: "bench", wsHost: c.host, wsPort: c.port, forceTLS: false,
      enabledTransports: ["ws"], disableStats: true,
      channelAuthorization: {
        customHandler: ({ socketId, channelName }, callback) => {
          const auth = {};
          let text = `${socketId}:${channelName}`;
          if (channelName.startsWith("presence-")) {
            auth.channel_data = JSON.stringify({ user_id: spec.user, user_info: { name: `user ${spec.user}` } });
            text += `:${auth.channel_data}`;
          }
          auth.auth = `${c.key}:${sign(c.secret, text)}`;
          callback(null, auth);
        },
      },
    });
    const conn = this.pusher.connection;
    conn.bind("state_change", ({ previous, current }) => {
      if (previous === "connected" && current !== "connected") {
        if (this.open && !this.leaving && !state.closing) state.drops++;
        this.open = false;
      }
    });
    // Raw frames: presence bookkeeping independent of pusher-js's own Members (which hides a
    // repeated member_added).
    conn.bind("message", (m) => this.onMessage(m));
  }
  onMessage(m) {
    if (!m || typeof m.channel !== "string" || !m.channel.startsWith("presence-")) return;
    const t = now();
    const data = typeof m.data === "string" ? JSON.parse(m.data) : m.data;
    const seen = this.members.get(m.channel);
    if (m.event === "pusher_internal:subscription_succeeded") {
      const ids = (data.presence && data.presence.ids) || [];
      const set = new Set(ids.map(String));
      if (set.size !== ids.length || data.presence.count !== ids.length || !set.has(this.spec.user)) {
        anomaly("bad_succeeded", { user: this.spec.user, ids: ids.length, unique: set.size, count: data.presence.count });
      }
      this.members.set(m.channel, set);
      const j = state.joinedAt[this.spec.user];
      if (j) { j[1] = t; j[2] = set.size; }
    } else if (m.event === "pusher_internal:member_added" && seen) {
      const user = String(data.user_id);
      if (seen.has(user)) anomaly("dup_added", { at_user: this.spec.user, user, members: seen.size });
      seen.add(user);
      if (this.spec.observer && state.firstAdded[user] === undefined) state.firstAdded[user] = t;
    } else if (m.event === "pusher_internal:member_removed" && seen) {
      const user = String(data.user_id);
      if (!seen.has(user)) anomaly("absent_removed", { at_user: this.spec.user, user, members: seen.size });
      seen.delete(user);
      if (this.spec.observer) state.lastRemoved[user] = t;
    }
  }
  subscribe(name) {
    return new Promise((resolve) => {
      if (this.spec.user && name.startsWith("presence-")) state.joinedAt[this.spec.user] = [now(), 0, 0];
      const ch = this.pusher.subscribe(name);
      const timer = setTimeout(() => resolve("subscribe timeout"), JOIN_TIMEOUT_MS);
      const done = (why) => { clearTimeout(timer); ch.unbind("pusher:subscription_succeeded"); ch.unbind("pusher:subscription_error"); resolve(why); };
      ch.bind("pusher:subscription_succeeded", () => done(null));
      ch.bind("pusher:subscription_error", (e) => {
        const why = `subscription_error ${e && (e.status || e.type)}`;
        state.subErrors[why] = (state.subErrors[why] || 0) + 1;
        done(why);
      });
      ch.bind("bench", onBench);
      ch.bind("client-bench", onBench);
    });
  }
  unsubscribe(name) { this.members.delete(name); this.pusher.unsubscribe(name); }
  connect() {
    return new Promise((resolve) => {
      const started = now();
      let done = false;
      const finish = (ok, why) => { if (done) return; done = true; clearTimeout(timer); resolve({ ok, ms: now() - started, why }); };
      const timer = setTimeout(() => finish(false, "connect timeout"), JOIN_TIMEOUT_MS);
      this.pusher.connection.bind("connected", async () => {
        if (done || this.open) return;
        this.open = true;
        const whys = await Promise.all(this.spec.channels.map((name) => this.subscribe(name)));
        const why = whys.find((w) => w !== null);
        finish(why === undefined, why);
      });
      // "unavailable" (no connection within pusher-js's 10 s) is not the end: pusher-js keeps
      // trying, and a loaded server is counted by its join time, up to JOIN_TIMEOUT_MS.
      this.pusher.connection.bind("failed", () => finish(false, "connection failed"));
    });
  }
  close() { this.leaving = true; this.open = false; this.pusher.disconnect(); }
}

async function cmdOpen(c) {
  const started = now();
  const join = new Hist();
  const reasons = {};
  let ok = 0, failed = 0;
  const waits = [];
  const interval = c.rate > 0 ? 1000 / c.rate : 0;
  for (let i = 0; i < c.conns.length; i++) {
    const lag = started + i * interval - now();
    if (lag > 1) await sleep(lag);
    const conn = new PusherConn(c, c.conns[i]);
    state.conns.push(conn);
    waits.push(conn.connect().then((r) => {
      if (r.ok) { ok++; join.add(r.ms); } else { failed++; reasons[r.why] = (reasons[r.why] || 0) + 1; }
    }));
  }
  await Promise.all(waits);
  out({ ev: "opened", ok, failed, reasons, join: join.toJSON(), elapsed_ms: now() - started });
}

function finishStep(step, extra) {
  const s = stepStats(step);
  state.steps.delete(step);
  out({ ev: "step", step, ...extra, recv: s.recv, lat: s.lat.toJSON(),
    loop: { p99: state.loop.percentile(99) / 1e6, max: state.loop.max / 1e6 } });
}

let keySeq = 0;
async function cmdStep(c) {
  const senders = state.conns.filter((x) => x.spec.send && x.open);
  const step = String(c.step);
  const total = Math.round(c.rate * c.duration_s);
  let sent = 0, refused = 0, rr = 0;
  state.loop.reset();
  const started = now();
  if (senders.length > 0 && total > 0) {
    await new Promise((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(c.rate * (now() - started) / 1000)) - sent;
        for (let i = 0; i < due; i++) {
          const conn = senders[rr++ % senders.length];
          const ch = conn.pusher.channel(conn.spec.send);
          sent++;
          if (!ch || !ch.trigger("client-bench", { s: step, t: now(), k: `${process.pid}-${++keySeq}` })) refused++;
        }
        if (sent >= total) resolve(); else setTimeout(tick, 2);
      };
      tick();
    });
  }
  const sendElapsed = (now() - started) / 1000;
  await sleep(c.drain_ms || 0);
  finishStep(step, { sent, refused, send_elapsed_s: sendElapsed });
}

async function cmdTrigger(c) {
  const step = String(c.step);
  const path = `/apps/${c.app_id}/events`;
  const http = new Hist();
  const status = {};
  const idle = [];
  let opened = 0, inflight = 0, skipped = 0, sent = 0;
  const started = now();
  const interval = 1000 / c.rate;
  const total = Math.floor(c.rate * c.duration_s);
  const waits = [];
  state.loop.reset();
  for (let i = 0; i < total; i++) {
    const lag = started + i * interval - now();
    if (lag > 1) await sleep(lag);
    if (inflight >= MAX_TRIGGER_INFLIGHT) { skipped++; continue; }
    let conn = idle.pop();
    while (conn && conn.closed) conn = idle.pop();
    if (!conn) { conn = new HttpConn(c.host, c.port); opened++; }
    const channel = c.channels[i % c.channels.length];
    const body = JSON.stringify({ name: "bench", channel,
      data: JSON.stringify({ s: step, t: now(), k: `${process.pid}-${i}` }) });
    const query = pusherQuery("POST", path, c.key, c.secret, [], body);
    inflight++; sent++;
    const t = now();
    waits.push(conn.request(`POST ${path}?${query} HTTP/1.1\r\nhost: ${c.host}:${c.port}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
      .then((code) => {
        const key = code === null ? "closed" : code;
        status[key] = (status[key] || 0) + 1;
        http.add(now() - t);
        inflight--;
        if (code !== null && !conn.closed) idle.push(conn);
      }));
  }
  const sendElapsed = (now() - started) / 1000;
  await Promise.all(waits);
  for (const conn of idle) conn.close();
  await sleep(c.drain_ms || 0);
  finishStep(step, { status, skipped, sent, connections: opened, http: http.toJSON(), send_elapsed_s: sendElapsed });
}

function cmdState() {
  const open = state.conns.filter((x) => x.open).length;
  out({ ev: "state", open, drops: state.drops, sub_errors: state.subErrors });
}

function cmdPresence(c) {
  const counts = {};
  for (const conn of state.conns) {
    const seen = conn.open && conn.members.get(c.channel);
    if (!seen) continue;
    counts[seen.size] = (counts[seen.size] || 0) + 1;
  }
  const observer = state.conns.find((x) => x.spec.observer);
  out({ ev: "presence", counts, anomalies: state.anomalies,
    observer_count: observer && observer.members.get(c.channel) ? observer.members.get(c.channel).size : null,
    joined_at: state.joinedAt, left_at: state.leftAt, first_added: state.firstAdded, last_removed: state.lastRemoved });
}

async function cmdChurn(c) {
  state.phase = "churn";
  const members = state.conns.filter((x) => x.open && !x.spec.observer && x.spec.channels.includes(c.channel));
  const total = Math.floor(c.rate * c.duration_s);
  const started = now();
  const waits = [];
  let failed = 0;
  for (let i = 0; i < total && members.length > 0; i++) {
    const lag = started + i * (1000 / c.rate) - now();
    if (lag > 1) await sleep(lag);
    const conn = members[i % members.length];
    conn.unsubscribe(c.channel);
    state.leftAt[conn.spec.user] = now();
    waits.push(sleep(c.gap_ms).then(() => conn.subscribe(c.channel)).then((why) => { if (why) failed++; }));
  }
  await Promise.all(waits);
  out({ ev: "churn", done: total, failed, elapsed_ms: now() - started });
}

async function cmdLeave(c) {
  state.phase = "leave";
  const members = state.conns.filter((x) => x.open && !x.spec.observer);
  const started = now();
  for (let i = 0; i < members.length; i++) {
    const lag = started + i * (1000 / c.rate) - now();
    if (lag > 1) await sleep(lag);
    if (members[i].spec.user) state.leftAt[members[i].spec.user] = now();
    members[i].close();
  }
  out({ ev: "left", count: members.length, elapsed_ms: now() - started });
}

async function cmdClose() {
  state.closing = true;
  for (const c of state.conns) { try { c.close(); } catch { /* already closed */ } }
  await sleep(200);
  out({ ev: "closed" });
  process.exit(0);
}

const handlers = { open: cmdOpen, step: cmdStep, trigger: cmdTrigger, state: cmdState, presence: cmdPresence,
  churn: cmdChurn, leave: cmdLeave, close: cmdClose };
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
