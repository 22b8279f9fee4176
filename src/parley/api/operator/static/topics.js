// Topics with local subscribers and presence, and one topic's presence.

import * as api from "./api.js";
import {flash, h, number, pager, table} from "./dom.js";

export function render(root, {params}) {
  const state = {prefix: params.get("prefix") || "", sort: params.get("sort") || "topic",
    order: params.get("order") || "asc", offset: Number(params.get("offset") || 0), limit: 50};
  let timer = null;
  let stopped = false;
  const prefix = h("input", {type: "search", id: "prefix", placeholder: "conversation:", value: state.prefix,
    onchange: () => change({prefix: prefix.value, offset: 0})});
  const list = h("div");
  root.replaceChildren(h("h1", null, "Topics"),
    h("div", {class: "toolbar"}, h("label", null, "Starts with", prefix)), list);

  function change(update) {
    Object.assign(state, update);
    history.replaceState(null, "", `#topics?${new URLSearchParams(Object.entries(state).filter(([, v]) => v !== ""))}`);
    refresh();
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const data = await api.get("/debug/topics", state);
      if (stopped) return;
      list.replaceChildren(table([
        {title: "topic", key: "topic", sort: "topic", class: "topic wrap",
          cell: (t) => h("a", {href: `#topic/${encodeURIComponent(t.topic)}`}, t.topic)},
        {title: "subscribers", key: "subscribers", sort: "subscribers", num: true},
        {title: "present", key: "keys", num: true, cell: (t) => number(t.presence.keys)},
        {title: "presence entries", key: "metas", num: true, cell: (t) => number(t.presence.metas)},
      ], data.topics, {id: "topics", sort: state.sort, order: state.order,
        onSort: (c) => change(state.sort === c ? {order: state.order === "asc" ? "desc" : "asc"} : {sort: c, order: "asc"})}),
      pager(data.total, data.offset, data.limit, (offset) => change({offset})));
    } catch (error) { flash(error.message, {error: true}); }
    if (!stopped) timer = setTimeout(refresh, 3000);
  }
  refresh();
  return {stop() { stopped = true; clearTimeout(timer); }};
}

export function renderOne(root, {arg}) {
  const body = h("div");
  root.replaceChildren(h("p", null, h("a", {href: "#topics"}, "‹ Topics")), h("h1", null, arg), body);
  api.get(`/debug/topics/${arg.split("/").map(encodeURIComponent).join("/")}`).then((data) => {
    const p = data.presence;
    body.replaceChildren(h("p", null, `${number(data.subscribers)} subscribers; ${number(p.keys)} present ` +
      `(${number(p.metas)} entries)${p.entries.length < p.keys ? `, first ${p.entries.length} shown` : ""}.`),
    table([{title: "key", key: "key"}, {title: "metas", key: "metas", class: "wrap",
      cell: (e) => h("code", null, JSON.stringify(e.metas))}], p.entries));
  }).catch((error) => {
    body.replaceChildren(h("p", {class: "muted"}, error.status === 404 ? "Nobody is on this topic now." : error.message));
  });
  return {stop() {}};
}
