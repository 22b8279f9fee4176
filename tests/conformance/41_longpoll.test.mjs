// §8 and item 41 over long polling, whatever transport the rest of the run uses: phoenix.js with
// `transport: LongPoll` through a whole chat (join with presence, sends with acks, the other's
// messages, leave), and `longPollFallbackMs` against a server that refuses the WebSocket upgrade.

import {test} from "node:test"
import {randomUUID} from "node:crypto"
import {
  assert, fixture, skip, alice, bob, conversationTopic, openSocket, closeSocket, join, push,
  collect, waitFor, LongPoll, Presence, WebSocket
} from "./helpers.mjs"

const keysOf = (presence) => presence.list((key) => key).sort()

test("items 28, 29, 41: phoenix.js over LongPoll: presence, sends with acks, the other's messages, leave", {skip}, async () => {
  const topic = conversationTopic()
  const a = openSocket(alice(), {transport: LongPoll})
  const b = openSocket(bob(), {transport: LongPoll})
  try {
    const aChannel = a.socket.channel(topic)
    const bChannel = b.socket.channel(topic)
    const aPresence = new Presence(aChannel)
    const aSeen = collect(aChannel, "new_msg")
    const bSeen = collect(bChannel, "new_msg")
    assert.equal((await join(aChannel)).status, "ok")
    assert.equal((await join(bChannel)).status, "ok")
    assert.equal(a.socket.transport, LongPoll)
    const both = [String(alice().id), String(bob().id)].sort()
    await waitFor(() => both.every(key => keysOf(aPresence).includes(key)), {what: "both present"})

    const fromAlice = `alice over long poll ${randomUUID()}`
    const ack = await push(aChannel, "new_msg", {body: fromAlice, client_id: randomUUID()})
    assert.equal(ack.status, "ok")
    assert.ok(Number.isInteger(ack.response.seq))
    const got = await waitFor(() => bSeen.find(p => p.body === fromAlice), {what: "bob receives"})
    assert.equal(got.seq, ack.response.seq)

    const fromBob = `bob over long poll ${randomUUID()}`
    const ackB = await push(bChannel, "new_msg", {body: fromBob})
    assert.equal(ackB.status, "ok")
    await waitFor(() => aSeen.find(p => p.body === fromBob), {what: "alice receives"})

    const left = await new Promise(resolve => bChannel.leave().receive("ok", () => resolve("ok")))
    assert.equal(left, "ok")
    await waitFor(() => !keysOf(aPresence).includes(String(bob().id)), {what: "bob's presence leaves"})
    assert.deepEqual(a.closes, [])
    assert.deepEqual(b.closes, [])
  } finally {
    await Promise.all([a, b].map(closeSocket))
  }
})

test("§8.7: with longPollFallbackMs, an upgrade refused with 403 falls back to LongPoll and works", {skip}, async (t) => {
  if(!fixture.disallowed_origin){ t.skip("needs fixture.disallowed_origin"); return }
  // A WebSocket the server refuses before the upgrade (403: its Origin is not allowed), as a
  // server or proxy without WebSocket support would refuse it; the long-poll requests carry
  // no Origin and are accepted.
  class RefusedWebSocket extends WebSocket {
    constructor(url, protocols){ super(url, protocols, {origin: fixture.disallowed_origin}) }
  }
  const state = openSocket(alice(), {transport: RefusedWebSocket, longPollFallbackMs: 3000})
  try {
    const channel = state.socket.channel(conversationTopic())
    assert.equal((await join(channel, 8000)).status, "ok")
    assert.equal(state.socket.transport, LongPoll, "fell back to LongPoll")
    assert.ok(state.errors.length >= 1, "the refused upgrade was reported")
    const ack = await push(channel, "new_msg", {body: `after the fallback ${randomUUID()}`})
    assert.equal(ack.status, "ok")
  } finally {
    await closeSocket(state)
  }
})
