// Actors: sortable, filterable by kind and key, paged on the server; each links to its detail.

import * as api from "./api.js";
import {endIdle, killActor} from "./actions.js";
import {ago, flash, h, number, pager, table} from "./dom.js";

const SIZES = [25, 50, 100, 200, 500];

export function render(root, {params}) {
  const state = {
    kind: params.get("kind") || "", key: params.get("key") || "", sort: params.get("sort") || "id",
    order: params.get("order") || "asc", offset: Number(params.get("offset") || 0),
    limit: Number(params.get("limit") || 50),
  };
  let timer = null;
  let stopped = false;
  const kind = h("select", {id: "kind", name: "kind", onchange: () => change({kind: kind.value, offset: 0})},
    h("option", {value: ""}, "all kinds"));
  const key = h("input", {id: "key", name: "key", type: "search", placeholder: "part of a key",
    value: state.key, oninput: debounce(() => change({key: key.value, offset: 0}), 300)});
  const size = h("select", {id: "limit", onchange: () => change({limit: Number(size.value), offset: 0})},
    SIZES.map((n) => h("option", {value: n, selected: n === state.limit}, `${n} per page`)));
  const list = h("div", {id: "actor-list"});
  root.replaceChildren(h("h1", null, "Actors"),
    h("div", {class: "toolbar"}, h("label", null, "Kind", kind), h("label", null, "Key", key),
      h("label", null, "Page", size)),
    list);

  function change(update) {
    Object.assign(state, update);
    const query = new URLSearchParams(Object.entries(state).filter(([, v]) => v !== "" && v !== null));
    history.replaceState(null, "", `#actors?${query}`);
    refresh();
  }

  function sortBy(column) {
    change(state.sort === column ? {order: state.order === "asc" ? "desc" : "asc"} : {sort: column, order: "asc"});
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const data = await api.get("/debug/actors", state);
      if (stopped) return;
      const known = Object.entries(data.kinds);
      const signature = JSON.stringify(known);
      if (kind.dataset.signature !== signature) {
        kind.dataset.signature = signature;
        kind.replaceChildren(h("option", {value: ""}, "all kinds"),
          ...known.map(([name, count]) => h("option", {value: name}, `${name} (${count})`)));
      }
      kind.value = state.kind;
      list.replaceChildren(table(columns(refresh), data.actors.map((a) => ({...a, _class: a.running ? null : "down"})),
        {id: "actors", onSort: sortBy, sort: state.sort, order: state.order}),
      pager(data.total, data.offset, data.limit, (offset) => change({offset})));
    } catch (error) { flash(error.message, {error: true}); }
    if (!stopped) timer = setTimeout(refresh, 2000);
  }

  refresh();
  return {stop() { stopped = true; clearTimeout(timer); }};
}

function columns(refresh) {
  return [
    {title: "id", key: "id", sort: "id", cell: (a) => h("a", {href: `#actor/${encodeURIComponent(a.id)}`}, a.id)},
    {title: "kind", key: "kind", sort: "kind"},
    {title: "key", key: "key", sort: "key", class: "key wrap"},
    {title: "mailbox", key: "mailbox", sort: "mailbox_depth", num: true,
      cell: (a) => `${a.mailbox_depth}/${a.mailbox_capacity}`},
    {title: "processed", key: "processed", sort: "processed", num: true, cell: (a) => number(a.processed)},
    {title: "dropped", key: "dropped", sort: "dropped", num: true},
    {title: "restarts", key: "restarts", sort: "restarts", num: true},
    {title: "started", key: "started_at", sort: "started_at", cell: (a) => ago(a.started_at)},
    {title: "last error", key: "last_error", class: "last_error wrap error"},
    {title: "", key: "actions", cell: (a) => h("span", null,
      h("button", {type: "button", class: "small kill", onclick: async () => { if (await killActor(a)) refresh(); }}, "Kill…"),
      a.kind === "conversation"
        ? h("button", {type: "button", class: "small end-idle", onclick: async () => { if (await endIdle(a)) refresh(); }}, "End…")
        : null)},
  ];
}

function debounce(fn, ms) {
  let t = null;
  return () => { clearTimeout(t); t = setTimeout(fn, ms); };
}
