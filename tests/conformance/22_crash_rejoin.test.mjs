// §14 item 22 (+ 41): a crashing channel gets phx_error (ref = join_ref), the socket stays up,
// other channels keep working, and phoenix.js rejoins the crashed topic with a fresh join_ref.
// Assumes the server's `debug_crash` event on conversation:{id}, allowed for fixture.admin.

import {test} from "node:test"
import {
  assert, skip, admin, conversationTopic, openSocket, closeSocket, join, push, waitFor, RawClient
} from "./helpers.mjs"

test("item 22: phx_error for the crashed channel only; the rejoin succeeds", {skip}, async () => {
  const state = openSocket(admin())
  try {
    const topic = conversationTopic()
    const channel = state.socket.channel(topic)
    const other = state.socket.channel(`user:${admin().id}`)
    const joinReplies = []
    const errors = []
    channel.onError(reason => errors.push(reason))
    channel.join().receive("ok", () => joinReplies.push(channel.joinRef()))
    assert.equal((await join(other)).status, "ok")
    await waitFor(() => joinReplies.length === 1, {what: "first join"})
    const firstJoinRef = joinReplies[0]

    channel.push("debug_crash", {}, 1000)
    await waitFor(() => errors.length === 1, {what: "phx_error"})
    const frame = state.frames.find(f => f.event === "phx_error" && f.topic === topic)
    assert.equal(frame.join_ref, firstJoinRef)
    assert.equal(frame.ref, firstJoinRef)
    assert.deepEqual(errors[0], frame.payload)

    await waitFor(() => joinReplies.length === 2, {what: "rejoin", timeout: 8000})
    assert.notEqual(joinReplies[1], firstJoinRef, "the rejoin uses a fresh join_ref")
    assert.equal(state.opens, 1, "the socket never reconnected")
    assert.deepEqual(state.closes, [])

    const reply = await push(channel, "new_msg", {body: "after the crash"})
    assert.equal(reply.status, "ok")
    const ping = await new Promise(resolve => state.socket.ping(resolve))
    assert.ok(ping >= 0)
    assert.equal(other.state, "joined")
  } finally {
    await closeSocket(state)
  }
})

test("item 22 (raw): phx_error is [jr, jr, topic, 'phx_error', payload] and the socket stays open", {skip}, async () => {
  const client = await RawClient.open({token: admin().token})
  try {
    const topic = conversationTopic()
    const [, joinRef] = await client.join(topic)
    client.send([joinRef, client.ref(), topic, "debug_crash", {}])
    const error = await client.next(f => f[3] === "phx_error" && f[2] === topic)
    assert.equal(error[0], joinRef)
    assert.equal(error[1], joinRef)
    assert.equal(typeof error[4], "object")
    const after = await client.request(joinRef, topic, "new_msg", {body: "dead instance"})
    assert.equal(after[0], null, "the crashed instance is gone: unmatched topic")
    assert.equal(after[4].response.reason, "unmatched topic")
    const [rejoin] = await client.join(topic)
    assert.equal(rejoin[4].status, "ok")
    assert.equal(client.closeEvent, null)
  } finally {
    await client.close()
  }
})
