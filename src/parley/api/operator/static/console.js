// The console's entry point: who is signed in, the navigation, and a view per location hash.

import * as api from "./api.js";
import {render as actor} from "./actor.js";
import {render as actors} from "./actors.js";
import {render as audit} from "./audit.js";
import {flash} from "./dom.js";
import {render as overview} from "./overview.js";
import {render as sockets, renderOne as socket} from "./sockets.js";
import {render as topics, renderOne as topic} from "./topics.js";
import {render as tree} from "./tree.js";

const VIEWS = {overview, tree, actors, actor, sockets, socket, topics, topic, audit};
const NAV_OF = {actor: "actors", socket: "sockets", topic: "topics"};
let current = null;

function route() {
  if (current) current.stop();
  const raw = location.hash.slice(1);
  const mark = raw.indexOf("?");
  const path = decodeURIComponent(mark < 0 ? raw : raw.slice(0, mark));
  const query = mark < 0 ? "" : raw.slice(mark + 1);
  const slash = path.indexOf("/");
  const name = slash < 0 ? path : path.slice(0, slash);
  const arg = slash < 0 ? null : path.slice(slash + 1);
  const view = VIEWS[name] ? name : "overview";
  document.querySelectorAll("#nav a").forEach((a) => {
    a.classList.toggle("active", a.dataset.view === (NAV_OF[view] || view));
  });
  current = VIEWS[view](document.getElementById("view"), {arg, params: new URLSearchParams(query)});
}

async function start() {
  if (/token=/.test(location.hash)) {
    // The old console took #token=; never keep a credential in the address bar or history.
    history.replaceState(null, "", location.pathname);
    flash("Tokens in the URL are not used: you are signed in with the form.", {error: true});
  }
  const session = await api.get("/debug/session");
  api.setCsrfToken(session.csrf_token);
  document.getElementById("node").textContent = session.node;
  document.getElementById("who").textContent = session.operator.label;
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api.post("/debug/sign-out").catch(() => null);
    location.reload();
  });
  window.addEventListener("hashchange", route);
  route();
}

start().catch((error) => flash(error.message, {error: true}));
