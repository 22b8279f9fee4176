// Sockets of this node (paged, filterable by user and transport), and one socket's detail.

import * as api from "./api.js";
import {closeSocket} from "./actions.js";
import {ago, bytes, fields, flash, h, number, pager, table} from "./dom.js";

export function render(root, {params}) {
  const state = {user: params.get("user") || "", transport: params.get("transport") || "",
    sort: params.get("sort") || "connected_at", order: params.get("order") || "asc",
    offset: Number(params.get("offset") || 0), limit: Number(params.get("limit") || 50)};
  let timer = null;
  let stopped = false;
  const user = h("input", {type: "search", id: "user", placeholder: "username or user id", value: state.user,
    onchange: () => change({user: user.value, offset: 0})});
  const transport = h("select", {id: "transport", onchange: () => change({transport: transport.value, offset: 0})},
    ["", "websocket", "longpoll"].map((t) => h("option", {value: t, selected: t === state.transport}, t || "any")));
  const summary = h("div", {class: "cards"});
  const list = h("div");
  root.replaceChildren(h("h1", null, "Sockets"), summary, h("h2", null, "Open sockets"),
    h("div", {class: "toolbar"}, h("label", null, "User", user), h("label", null, "Transport", transport)), list);

  function change(update) {
    Object.assign(state, update);
    history.replaceState(null, "", `#sockets?${new URLSearchParams(Object.entries(state).filter(([, v]) => v !== ""))}`);
    refresh();
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const data = await api.get("/debug/sockets", state);
      if (stopped) return;
      const s = data.summary;
      summary.replaceChildren(card("Open", number(s.connections)), card("Users", number(s.users)),
        card("Presence", `${number(s.presence.metas)} in ${number(s.presence.topics)} topics`),
        card("Opened", number(s.counters.connections_opened || 0)),
        card("Slow consumers", number(s.counters.slow_consumers || 0)),
        card("Rate limited", number(s.counters.rate_limited || 0)));
      list.replaceChildren(table(COLUMNS(refresh), data.sockets,
        {id: "sockets", sort: state.sort, order: state.order,
          onSort: (c) => change(state.sort === c ? {order: state.order === "asc" ? "desc" : "asc"} : {sort: c, order: "asc"})}),
      pager(data.total, data.offset, data.limit, (offset) => change({offset})));
    } catch (error) { flash(error.message, {error: true}); }
    if (!stopped) timer = setTimeout(refresh, 3000);
  }
  refresh();
  return {stop() { stopped = true; clearTimeout(timer); }};
}

const COLUMNS = (refresh) => [
  {title: "id", key: "id", cell: (s) => h("a", {href: `#socket/${encodeURIComponent(s.id)}`}, s.id)},
  {title: "user", key: "user", sort: "user", cell: (s) => s.user.username},
  {title: "transport", key: "transport", sort: "transport", cell: (s) => `${s.transport} ${s.protocol}/${s.vsn}`},
  {title: "peer", key: "peer"},
  {title: "connected", key: "connected_at", sort: "connected_at", cell: (s) => ago(s.connected_at)},
  {title: "channels", key: "channels", class: "channels wrap", cell: (s) => s.channels.join(", ")},
  {title: "outbound", key: "outbound", sort: "outbound_bytes", num: true,
    cell: (s) => `${s.outbound.frames} / ${bytes(s.outbound.bytes)}`},
  {title: "in", key: "frames_in", sort: "frames_in", num: true},
  {title: "out", key: "frames_out", num: true},
  {title: "rate tokens", key: "rate_limit", num: true,
    cell: (s) => s.rate_limit ? `${s.rate_limit.tokens}/${s.rate_limit.burst}` : "—"},
  {title: "", key: "actions", cell: (s) => s.closing ? h("span", {class: "muted"}, "closing")
    : h("button", {type: "button", class: "small close", onclick: async () => { if (await closeSocket(s)) refresh(); }}, "Close…")},
];

export function renderOne(root, {arg}) {
  const body = h("div");
  root.replaceChildren(h("p", null, h("a", {href: "#sockets"}, "‹ Sockets")), h("h1", null, arg), body);
  api.get(`/debug/sockets/${encodeURIComponent(arg)}`).then(({socket}) => {
    body.replaceChildren(fields([["User", `${socket.user.username} (${socket.user.id})`],
      ["Token", socket.token_kind], ["Transport", `${socket.transport} ${socket.protocol}/${socket.vsn}`],
      ["Peer", socket.peer], ["Connected", socket.connected_at], ["Channels", socket.channels.join(", ") || "none"],
      ["Outbound", `${socket.outbound.frames} frames, ${bytes(socket.outbound.bytes)} of ${bytes(socket.outbound.max_bytes)}`],
      ["Frames in / out", `${socket.frames_in} / ${socket.frames_out}`],
      ["Rate limit", socket.rate_limit ? `${socket.rate_limit.tokens} of ${socket.rate_limit.burst} tokens, ${socket.rate_limit.per_second}/s` : "—"]]),
    h("div", {class: "actions"}, h("button", {type: "button", class: "danger", onclick: async () => { if (await closeSocket(socket)) location.hash = "#sockets"; }}, "Close…")),
    h("h2", null, "Session"), h("pre", null, JSON.stringify(socket.session, null, 2)));
  }).catch((error) => {
    body.replaceChildren(h("p", {class: "muted"}, error.status === 404 ? "This socket is closed." : error.message));
  });
  return {stop() {}};
}

function card(label, value) {
  return h("div", {class: "card"}, h("div", {class: "label"}, label), h("div", {class: "value"}, value));
}
