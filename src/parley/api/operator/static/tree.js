// The supervision tree, drawn as nested collapsible elements (<details> per supervisor).

import * as api from "./api.js";
import {killActor} from "./actions.js";
import {ago, flash, h, statusBadge} from "./dom.js";

const RECENT_SECONDS = 60;
const collapsed = new Set(["parley/conversations", "parley/sessions"]);

export function render(root) {
  let timer = null;
  let stopped = false;
  const holder = h("div", {class: "tree", id: "tree"});
  root.replaceChildren(h("h1", null, "Supervision tree"),
    h("p", {class: "muted"}, "Supervisors with their strategy and restart intensity; children " +
      "that restarted in the last minute are highlighted. Click a supervisor to fold it."),
    holder);

  async function refresh() {
    try {
      const data = await api.get("/debug/tree");
      holder.replaceChildren(supervisor(data.tree, data.tree.name, refresh));
    } catch (error) { flash(error.message, {error: true}); }
    if (!stopped) timer = setTimeout(refresh, 2000);
  }
  refresh();
  return {stop() { stopped = true; clearTimeout(timer); }};
}

function supervisor(node, path, refresh) {
  const intensity = node.intensity;
  const details = h("details", {class: "supervisor", dataset: {path}, open: !collapsed.has(path)},
    h("summary", null,
      h("span", {class: "name"}, node.name),
      h("span", {class: "badge strategy"}, node.strategy),
      h("span", {class: "intensity", title: "restarts in the current window / allowed"},
        `${intensity.recent_restarts}/${intensity.max_restarts} restarts in ${intensity.window_seconds}s`),
      statusBadge(node.running ? "running" : "stopped"),
      h("span", {class: "muted"}, `${node.children_total} ${node.children_total === 1 ? "child" : "children"}`)),
    h("ul", {class: "children"},
      node.children.map((child) => childItem(child, `${path}/${child.name}`, refresh)),
      node.children_total > node.children.length
        ? h("li", {class: "more"}, h("a", {href: "#actors"},
          `… and ${node.children_total - node.children.length} more (see Actors)`))
        : null));
  details.addEventListener("toggle", () => {
    if (details.open) collapsed.delete(path); else collapsed.add(path);
  });
  return details;
}

function childItem(child, path, refresh) {
  const info = child.details || {};
  if (info.strategy && Array.isArray(info.children)) {
    return h("li", {class: "child nested"}, supervisor(info, path, refresh));
  }
  const restartedAt = child.started_at ? (Date.now() - Date.parse(child.started_at)) / 1000 : null;
  const recent = child.restarts > 0 && restartedAt !== null && restartedAt < RECENT_SECONDS;
  const actor = info.id && info.kind ? info : null;
  return h("li", {class: `child ${child.status}${recent ? " recent" : ""}`, dataset: {name: child.name}},
    h("div", {class: "row"},
      actor ? h("a", {class: "name", href: `#actor/${encodeURIComponent(actor.id)}`}, child.name)
        : h("span", {class: "name"}, child.name),
      actor && actor.key ? h("code", null, actor.key) : null,
      h("span", {class: "badge"}, child.restart),
      statusBadge(child.status),
      h("span", {class: "restarts", title: "restarts"}, `↻ ${child.restarts}`),
      recent ? h("span", {class: "recent-note"}, `restarted ${ago(child.started_at)}`) : null,
      actor ? h("span", {class: "muted"}, `mailbox ${actor.mailbox_depth}/${actor.mailbox_capacity}`) : null,
      actor ? h("button", {type: "button", class: "small kill", onclick: async () => { if (await killActor(actor)) refresh(); }}, "Kill…") : null,
      child.last_error ? h("span", {class: "error", title: child.last_error}, shorten(child.last_error)) : null));
}

function shorten(text) {
  return text.length > 90 ? `${text.slice(0, 89)}…` : text;
}
