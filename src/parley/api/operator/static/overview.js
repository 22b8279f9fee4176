// Overview: the node, its connections and totals, and live charts of the last minutes.

import * as api from "./api.js";
import {chart} from "./chart.js";
import {confirmAction} from "./confirm.js";
import {bytes, duration, fields, flash, h, number} from "./dom.js";

const CHARTS = [
  ["Connections", [{label: "open", value: (s) => s.connections}], {digits: 0}],
  ["Messages / s", [{label: "in", value: (s) => s.messages_in_per_second},
    {label: "out", value: (s) => s.messages_out_per_second}], {}],
  ["Deliveries / s", [{label: "deliveries", value: (s) => s.deliveries_per_second}], {}],
  ["Joins / s", [{label: "joins", value: (s) => s.joins_per_second}], {}],
  ["Commit latency", [{label: "mean", value: (s) => s.commit_ms_mean},
    {label: "p99", value: (s) => s.commit_ms_p99}], {unit: " ms", digits: 2}],
  ["Writer batch size", [{label: "mean", value: (s) => s.batch_size_mean}], {}],
  ["Delivery latency p99", [{label: "p99", value: (s) => s.delivery_ms_p99}], {unit: " ms", digits: 2}],
  ["Event-loop lag (max)", [{label: "lag", value: (s) => s.loop_lag_ms_max}], {unit: " ms", digits: 2}],
  ["GC pauses", [{label: "pause", value: (s) => s.gc_pause_ms}], {unit: " ms", digits: 2}],
  ["Memory (RSS)", [{label: "rss", value: (s) => s.rss_bytes === null ? null : s.rss_bytes / 1048576}],
    {unit: " MiB", digits: 1}],
];

export function render(root) {
  let timer = null;
  let stopped = false;
  let samples = [];
  const charts = CHARTS.map(([title, series, options]) => chart(title, series, options));
  const summary = h("div", {id: "summary"});
  const node = h("div", {id: "node-panel"});
  root.replaceChildren(h("h1", null, "Overview"), summary,
    h("div", {class: "charts", id: "charts"}, charts.map((c) => c.element)), node);

  function show(data) {
    const kinds = data.connections.by_kind.map((k) => `${k.transport}/${k.protocol}: ${k.count}`);
    summary.replaceChildren(h("div", {class: "cards"},
      card("Node", data.node), card("Version", data.version),
      card("Uptime", duration(data.uptime_seconds)),
      card("Connections", number(data.connections.total), kinds.join(", ") || "none open"),
      card("Users online", number(data.connections.users)),
      card("Actors", number(data.actors)),
      card("Joins", number(data.totals.joins)),
      card("Messages in / out", `${number(data.totals.messages_in)} / ${number(data.totals.messages_out)}`),
      card("Deliveries", number(data.totals.deliveries)),
      card("Messages stored", number(data.totals.messages_stored), `${number(data.totals.batches)} batches`),
      card("Memory", bytes(last()?.rss_bytes ?? null))));
    showNode(data.drain);
  }

  function showNode(drain) {
    const draining = drain.state !== "serving";
    node.replaceChildren(h("h2", null, "This node"),
      fields([["State", h("span", {class: `status ${draining ? "restarting" : "running"}`, id: "drain-state"},
        drain.state)], ["Taking new sockets", drain.accepting ? "yes" : "no"],
        ["Drain period", `${drain.period_seconds} s`], ["Closed by the drain", number(drain.closed)],
        ["Open sockets", number(drain.open)], ["Drain started", drain.started_at || "—"],
        ["Finished", drain.finished_at || "—"]]),
      h("div", {class: "actions"}, draining
        ? h("button", {type: "button", id: "resume", onclick: () => act("resume")}, "Resume (take sockets again)")
        : h("button", {type: "button", id: "drain", class: "danger", onclick: () => act("drain")}, "Drain this node…")));
  }

  async function act(verb) {
    const name = document.getElementById("node").textContent;
    const ok = await confirmAction(verb === "drain" ? {
      title: `Drain ${name}?`,
      message: "New sockets are refused at once and /health answers 503; open sockets are closed " +
        "with 1012 over the drain period, so their clients reconnect to other nodes.",
      confirmLabel: "Drain",
    } : {title: `Resume ${name}?`, message: "The node takes new sockets again.", confirmLabel: "Resume"});
    if (!ok) return;
    try {
      await api.post(`/debug/nodes/${encodeURIComponent(name)}/${verb}`);
      flash(verb === "drain" ? "Draining." : "Serving again.");
      await refresh(true);
    } catch (error) { flash(error.message, {error: true}); }
  }

  function last() { return samples[samples.length - 1]; }

  async function refresh(full) {
    const since = !full && samples.length ? last().at : null;
    const data = await api.get("/debug/overview", {since});
    samples = full ? data.samples : samples.concat(data.samples).slice(-600);
    show(data);
    charts.forEach((c) => c.draw(samples));
    return data;
  }

  async function loop(full) {
    if (stopped) return;
    let period = 1000;
    try { period = Math.max(1000, (await refresh(full)).sample_seconds * 1000); }
    catch (error) { flash(error.message, {error: true}); }
    if (!stopped) timer = setTimeout(() => loop(false), period);
  }

  loop(true);
  const redraw = () => charts.forEach((c) => c.draw(samples));
  window.addEventListener("resize", redraw);
  return {stop() { stopped = true; clearTimeout(timer); window.removeEventListener("resize", redraw); }};
}

function card(label, value, note) {
  return h("div", {class: "card"}, h("div", {class: "label"}, label), h("div", {class: "value"}, value),
    note ? h("div", {class: "label"}, note) : null);
}
