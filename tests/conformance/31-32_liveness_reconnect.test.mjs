// §14 items 31, 32, 33 (partly) and 41: idle timeout, close codes meant for reconnects, and
// phoenix.js reconnecting + rejoining after the server closes its socket (a restart stand-in).
// Assumes fixture.heartbeat_timeout_seconds (short, e.g. 2) and the operator endpoint
// POST {http_base}/debug/sockets/{user_id}/close, which closes that user's sockets with 1012.

import {test} from "node:test"
import {
  assert, fixture, skip, alice, carol, dave, conversationTopic, openSocket, closeSocket, join,
  push, waitFor, operatorPost, Presence, longPoll, webSocketOnly
} from "./helpers.mjs"

const timeoutMs = () => fixture.heartbeat_timeout_seconds * 1000

test("items 31, 32: a silent connection is closed (not with 1000) and phoenix.js reconnects",
  {skip: webSocketOnly("no heartbeats over long polling (§8.6); a session that stops polling ends (§14 item 38, tests/socket/test_longpoll.py)")}, async (t) => {
  if(!(fixture.heartbeat_timeout_seconds > 0)){ t.skip("fixture.heartbeat_timeout_seconds not set"); return }
  const silent = openSocket(dave(), {heartbeatIntervalMs: 3_600_000})
  try {
    const channel = silent.socket.channel(`user:${dave().id}`)
    let joins = 0
    channel.join().receive("ok", () => { joins++ })
    await waitFor(() => joins === 1, {what: "join"})
    await waitFor(() => silent.closes.length >= 1, {timeout: timeoutMs() * 2 + 3000, what: "idle close"})
    assert.notEqual(silent.closes[0].code, 1000, "an idle close must invite a reconnect (§9.2)")
    assert.notEqual(silent.closes[0].code, 1005)
    await waitFor(() => silent.opens >= 2, {what: "reconnect"})
    await waitFor(() => joins >= 2, {what: "rejoin after reconnect"})
  } finally {
    await closeSocket(silent)
  }
})

test("item 31: a connection that heartbeats is never closed",
  {skip: webSocketOnly("no heartbeats and no idle close over long polling (§8.6): a polling client is alive by polling")}, async (t) => {
  if(!(fixture.heartbeat_timeout_seconds > 0)){ t.skip("fixture.heartbeat_timeout_seconds not set"); return }
  const lively = openSocket(dave(), {heartbeatIntervalMs: Math.max(100, timeoutMs() / 3)})
  let silent = null
  try {
    await waitFor(() => lively.opens === 1, {what: "open"})
    assert.equal((await join(lively.socket.channel(`user:${dave().id}`))).status, "ok")
    // A silent socket opened after the lively one: whatever closes it for idleness would have
    // closed the lively one first, had its heartbeats not counted.
    silent = openSocket(dave(), {heartbeatIntervalMs: 3_600_000, reconnectAfterMs: () => 3_600_000})
    await waitFor(() => silent.closes.length >= 1, {timeout: timeoutMs() * 2 + 3000, what: "idle close"})
    assert.equal((await join(lively.socket.channel("system:general"))).status, "ok")
    assert.deepEqual(lively.closes, [])
    assert.equal(lively.opens, 1)
  } finally {
    await Promise.all([lively, silent].filter(Boolean).map(closeSocket))
  }
})

test("items 32, 33, 41: after a server close (1012) the client reconnects, rejoins and works", {skip}, async () => {
  const topic = conversationTopic()
  const watcher = openSocket(alice())
  const victim = openSocket(carol())
  try {
    const watchChannel = watcher.socket.channel(topic)
    const presence = new Presence(watchChannel)
    assert.equal((await join(watchChannel)).status, "ok")

    const channel = victim.socket.channel(topic)
    const joinRefs = []
    channel.join().receive("ok", () => joinRefs.push(channel.joinRef()))
    await waitFor(() => joinRefs.length === 1, {what: "victim join"})
    const key = String(carol().id)
    const refs = () => ((presence.state[key] || {}).metas || []).map(meta => meta.phx_ref)
    await waitFor(() => refs().length >= 1, {what: "victim presence"})
    const before = new Set(refs())

    const response = await operatorPost(`/debug/sockets/${encodeURIComponent(carol().id)}/close`)
    assert.ok(response.ok, `debug close answered ${response.status}`)
    await waitFor(() => victim.closes.length >= 1, {what: "server close"})
    // Over long polling the session ends instead: phoenix.js's own code 3410 (session gone).
    assert.equal(victim.closes[0].code, longPoll ? 3410 : 1012)

    await waitFor(() => victim.opens >= 2, {what: "reconnect"})
    await waitFor(() => joinRefs.length >= 2, {what: "rejoin"})
    assert.notEqual(joinRefs[1], joinRefs[0])
    const reply = await push(channel, "new_msg", {body: "back after a restart"})
    assert.equal(reply.status, "ok")

    // the old connection's presence left; the new one joined with a new phx_ref
    await waitFor(() => [...before].every(ref => !refs().includes(ref)) && refs().length >= 1,
      {what: "presence leave of the closed connection"})
  } finally {
    await Promise.all([watcher, victim].map(closeSocket))
  }
})
