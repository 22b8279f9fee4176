// The audit log: the console's actions and the moderation audit, newest first.

import * as api from "./api.js";
import {flash, h, table} from "./dom.js";

export function render(root) {
  const list = h("div");
  const more = h("button", {type: "button", id: "older", hidden: true}, "Older…");
  root.replaceChildren(h("h1", null, "Audit log"),
    h("p", {class: "muted"}, "Operators' actions and sign-ins, and moderators' and admins' actions."),
    list, h("div", {class: "pager"}, more));
  const rows = [];
  let cursor = null;

  async function load() {
    try {
      const data = await api.get("/debug/audit", {before: cursor, limit: 100});
      rows.push(...data.entries);
      cursor = data.next_cursor;
      more.hidden = !cursor;
      list.replaceChildren(table([
        {title: "at", key: "at"},
        {title: "who", key: "who", cell: (e) => e.actor.username || e.details.by || "—"},
        {title: "action", key: "action"},
        {title: "target", key: "target", cell: (e) => `${e.target.type} ${e.target.id}`},
        {title: "reason", key: "reason", class: "wrap"},
        {title: "details", key: "details", class: "wrap", cell: (e) => h("code", null, JSON.stringify(e.details))},
      ], rows, {id: "audit"}));
    } catch (error) { flash(error.message, {error: true}); }
  }
  more.addEventListener("click", load);
  load();
  return {stop() {}};
}
