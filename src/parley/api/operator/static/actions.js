// The actions on actors and sockets, each confirmed first (shared by the lists and detail views).

import * as api from "./api.js";
import {confirmAction} from "./confirm.js";
import {flash} from "./dom.js";

export async function killActor(actor) {
  const ok = await confirmAction({
    title: `Kill ${actor.id}?`,
    message: `Crash ${actor.kind}${actor.key ? ` ${actor.key}` : ""} on purpose; its supervisor ` +
      "restarts it by its restart type (a session is not restarted: its client reconnects)." +
      (actor.kind === "registry" ? " The registry is a child of the root (rest_for_one): " +
        "everything started after it restarts too, the HTTP server and this page's connection included." : ""),
    confirmLabel: "Kill", reason: true,
  });
  if (!ok) return false;
  return run(`/debug/actors/${encodeURIComponent(actor.id)}/kill`, ok.reason ? {reason: ok.reason} : {},
    `Killed ${actor.id}.`);
}

export async function endIdle(actor) {
  const ok = await confirmAction({
    title: `End ${actor.id}?`,
    message: "End this actor now, as its idle timeout would; it starts again when it is next " +
      "needed. Refused while it is busy.",
    confirmLabel: "End it",
  });
  if (!ok) return false;
  return run(`/debug/actors/${encodeURIComponent(actor.id)}/end_idle`, {}, `Ended ${actor.id}.`);
}

export async function closeSocket(socket) {
  const ok = await confirmAction({
    title: `Close ${socket.id}?`,
    message: `Close the socket of ${socket.user.username} (${socket.transport}); with 1012 its ` +
      "client reconnects.",
    confirmLabel: "Close", code: true,
  });
  if (!ok) return false;
  return run(`/debug/sockets/${encodeURIComponent(socket.id)}/close`, {code: ok.code},
    `Closed ${socket.id}.`);
}

async function run(path, body, done) {
  try {
    await api.post(path, body);
    flash(done);
    return true;
  } catch (error) {
    flash(error.message, {error: true});
    return false;
  }
}
