// One actor: its statistics, its own describe(), what waits in its mailbox, its recent errors.

import * as api from "./api.js";
import {endIdle, killActor} from "./actions.js";
import {ago, fields, flash, h, number, table} from "./dom.js";

export function render(root, {arg}) {
  let timer = null;
  let stopped = false;
  const body = h("div", {id: "actor-detail"});
  root.replaceChildren(h("p", null, h("a", {href: "#actors"}, "‹ Actors")), h("h1", null, arg), body);

  async function refresh() {
    try {
      const data = await api.get(`/debug/actors/${encodeURIComponent(arg)}`);
      const a = data.actor;
      body.replaceChildren(
        fields([["Kind", a.kind], ["Key", a.key], ["Running", a.running ? "yes" : "no (restarting)"],
          ["Mailbox", `${a.mailbox_depth} of ${a.mailbox_capacity}`], ["Processed", number(a.processed)],
          ["Dropped", number(a.dropped)], ["Restarts", h("span", {id: "restarts"}, String(a.restarts))],
          ["Started", `${a.started_at || "—"} (${ago(a.started_at)})`],
          ["Last error", a.last_error ? h("span", {class: "error"}, a.last_error) : null]]),
        h("div", {class: "actions"},
          h("button", {type: "button", class: "danger kill", onclick: async () => { if (await killActor(a)) refresh(); }}, "Kill…"),
          a.kind === "conversation"
            ? h("button", {type: "button", class: "end-idle", onclick: async () => { if (await endIdle(a)) location.hash = "#actors"; }}, "End if idle…")
            : null),
        h("h2", null, "describe()"),
        h("pre", {id: "describe"}, JSON.stringify(a.state ?? {}, null, 2)),
        h("h2", null, `Mailbox (${a.mailbox_depth} waiting)`),
        data.mailbox.length
          ? table([{title: "envelope", key: "envelope"}, {title: "message", key: "message"}], data.mailbox)
          : h("p", {class: "muted"}, "empty"),
        h("h2", null, "Recent errors"),
        a.recent_errors.length
          ? table([{title: "at", key: "at"}, {title: "error", key: "error", class: "error wrap"}],
            [...a.recent_errors].reverse())
          : h("p", {class: "muted"}, "none"));
    } catch (error) {
      if (error.status === 404) {
        body.replaceChildren(h("p", {class: "muted"}, "This actor is gone (it stopped for good)."));
        return;
      }
      flash(error.message, {error: true});
    }
    if (!stopped) timer = setTimeout(refresh, 2000);
  }
  refresh();
  return {stop() { stopped = true; clearTimeout(timer); }};
}
