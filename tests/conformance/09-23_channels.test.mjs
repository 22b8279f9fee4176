// §14 items 9–20 and 23: joins, refusals, routing by join_ref, replies, leave, duplicate join.
// Frame-level checks use a raw V2 client; the phoenix.js view is checked where it matters.

import {test} from "node:test"
import {
  assert, fixture, skip, alice, bob, conversationTopic, openSocket, closeSocket, join,
  RawClient
} from "./helpers.mjs"

const UNMATCHED = {status: "error", response: {reason: "unmatched topic"}}
const isReply = (ref) => (f) => f[3] === "phx_reply" && f[1] === ref

async function withRaw(who, body){
  const client = await RawClient.open({token: who.token})
  try { await body(client) } finally { await client.close() }
}

test("item 9: a join returns ok with the same join_ref and ref and an object response", {skip}, async () => {
  await withRaw(alice(), async (client) => {
    const [reply, joinRef] = await client.join(`user:${alice().id}`)
    assert.equal(reply[0], joinRef)
    assert.equal(reply[1], joinRef)
    assert.equal(reply[2], `user:${alice().id}`)
    assert.equal(reply[4].status, "ok")
    assert.equal(typeof reply[4].response, "object")
    assert.equal(Array.isArray(reply[4].response), false)
  })
})

test("item 10: a refused join replies {reason: unauthorized} and leaves no channel", {skip}, async () => {
  const topic = `user:${bob().id}`
  await withRaw(alice(), async (client) => {
    const [reply, joinRef] = await client.join(topic)
    assert.deepEqual(reply, [joinRef, joinRef, topic, "phx_reply", {status: "error", response: {reason: "unauthorized"}}])
    const after = await client.request(joinRef, topic, "ping", {})
    assert.deepEqual(after.slice(2), [topic, "phx_reply", UNMATCHED])
    assert.equal(after[0], null)
  })
})

test("item 10: phoenix.js sees the refusal reason (and stops retrying after leave)", {skip}, async () => {
  const state = openSocket(alice())
  try {
    const channel = state.socket.channel(`user:${bob().id}`)
    const reply = await join(channel)
    assert.deepEqual(reply, {status: "error", response: {reason: "unauthorized"}})
    channel.leave()
  } finally {
    await closeSocket(state)
  }
})

test("item 11: an unroutable topic gets {reason: unmatched topic} with join_ref null", {skip}, async () => {
  await withRaw(alice(), async (client) => {
    const [reply, joinRef] = await client.join("no_such_kind:1")
    assert.deepEqual(reply, [null, joinRef, "no_such_kind:1", "phx_reply", UNMATCHED])
  })
})

test("item 12: the channel limit refuses the next join with 'too many channels joined'", {skip}, async (t) => {
  const limit = fixture.max_channels_per_socket
  const topics = [`user:${alice().id}`, `private_chat:${alice().id}`, "room:chat", "system:general", conversationTopic()]
  if(!(limit >= 1 && limit < topics.length)){
    t.skip(`needs fixture.max_channels_per_socket < ${topics.length} (got ${limit})`)
    return
  }
  await withRaw(alice(), async (client) => {
    for(const topic of topics.slice(0, limit)){
      const [reply] = await client.join(topic)
      assert.equal(reply[4].status, "ok", `join ${topic}`)
    }
    const topic = topics[limit]
    const [reply, joinRef] = await client.join(topic)
    assert.deepEqual(reply, [joinRef, joinRef, topic, "phx_reply", {status: "error", response: {reason: "too many channels joined"}}])
    // re-joining an already joined topic does not count against the limit
    const [again] = await client.join(topics[0])
    assert.equal(again[4].status, "ok")
  })
})

test("item 13: an event with the right join_ref is answered with the same refs", {skip}, async () => {
  const topic = conversationTopic()
  await withRaw(alice(), async (client) => {
    const [, joinRef] = await client.join(topic)
    const reply = await client.request(joinRef, topic, "new_msg", {body: "item 13"})
    assert.equal(reply[0], joinRef)
    assert.equal(reply[2], topic)
    assert.equal(reply[4].status, "ok")
    assert.ok(reply[4].response.id !== undefined && Number.isInteger(reply[4].response.seq))
  })
})

test("item 15: a stale join_ref gets no frame; a null join_ref is delivered", {skip}, async () => {
  const topic = conversationTopic()
  await withRaw(alice(), async (client) => {
    const [, joinRef] = await client.join(topic)
    const staleRef = client.ref()
    client.send(["999999", staleRef, topic, "new_msg", {body: "stale join_ref: must be dropped"}])
    const reply = await client.request(null, topic, "new_msg", {body: "item 15, null join_ref"})
    assert.equal(reply[4].status, "ok")
    assert.ok(reply[0] === null || reply[0] === joinRef)
    // Frames of one socket are handled in order: an answer to the stale push would have come first.
    assert.equal(client.frames.find(f => f[1] === staleRef), undefined)
  })
})

test("item 16: an event on a topic that is not joined gets 'unmatched topic'", {skip}, async () => {
  const topic = conversationTopic()
  await withRaw(alice(), async (client) => {
    const ref = client.ref()
    client.send(["5", ref, topic, "new_msg", {body: "not joined"}])
    const reply = await client.next(isReply(ref))
    assert.deepEqual(reply, [null, ref, topic, "phx_reply", UNMATCHED])
  })
})

test("items 17, 18: pushes carry the join_ref and ref null, and none precede the join reply", {skip}, async () => {
  const topic = conversationTopic()
  await withRaw(alice(), async (client) => {
    const [, joinRef] = await client.join(topic)
    await client.next(f => f[3] === "presence_state" && f[2] === topic, {what: "presence_state"})
    const mine = client.rawFrames.map(raw => JSON.parse(raw)).filter(f => f[0] === joinRef)
    assert.equal(mine[0][3], "phx_reply", "the join reply is the first frame of its join_ref")
    assert.equal(mine[0][1], joinRef)
    const pushes = mine.filter(f => f[3] !== "phx_reply")
    assert.ok(pushes.length >= 1)
    for(const frame of pushes){ assert.equal(frame[1], null, `push ${frame[3]} has ref null`) }
  })
})

test("item 19: leave replies ok {} then phx_close with ref = join_ref; then unmatched", {skip}, async () => {
  const topic = `user:${alice().id}`
  await withRaw(alice(), async (client) => {
    const [, joinRef] = await client.join(topic)
    const leaveRef = client.ref()
    client.send([joinRef, leaveRef, topic, "phx_leave", {}])
    const reply = await client.next(isReply(leaveRef))
    assert.deepEqual(reply, [joinRef, leaveRef, topic, "phx_reply", {status: "ok", response: {}}])
    const close = await client.next(f => f[3] === "phx_close" && f[2] === topic)
    assert.deepEqual(close, [joinRef, joinRef, topic, "phx_close", {}])
    const replyIndex = client.rawFrames.findIndex(raw => JSON.parse(raw)[1] === leaveRef)
    const closeIndex = client.rawFrames.findIndex(raw => JSON.parse(raw)[3] === "phx_close")
    assert.ok(replyIndex < closeIndex, "the leave reply precedes phx_close")
    const after = await client.request(joinRef, topic, "ping", {})
    assert.equal(after[0], null)
    assert.deepEqual(after.slice(2), [topic, "phx_reply", UNMATCHED])
  })
})

test("item 20: a leave for a topic that is not joined is answered ok {}", {skip}, async () => {
  await withRaw(alice(), async (client) => {
    const ref = client.ref()
    client.send(["3", ref, "room:chat", "phx_leave", {}])
    const reply = await client.next(isReply(ref))
    assert.deepEqual(reply.slice(1), [ref, "room:chat", "phx_reply", {status: "ok", response: {}}])
  })
})

test("item 23: a duplicate join succeeds; any phx_close carries the old join_ref", {skip}, async () => {
  const topic = conversationTopic()
  await withRaw(alice(), async (client) => {
    const [, oldRef] = await client.join(topic)
    const [reply, newRef] = await client.join(topic)
    assert.deepEqual(reply.slice(0, 4), [newRef, newRef, topic, "phx_reply"])
    assert.equal(reply[4].status, "ok")
    const event = await client.request(newRef, topic, "new_msg", {body: "item 23"})
    assert.equal(event[0], newRef)
    assert.equal(event[4].status, "ok")
    // Any close the duplicate join caused came before the reply to this later push.
    for(const frame of client.frames.filter(f => f[3] === "phx_close" || f[3] === "phx_error")){
      assert.equal(frame[0], oldRef, "a close for the replaced instance carries the old join_ref")
      assert.equal(frame[1], oldRef)
    }
  })
})
