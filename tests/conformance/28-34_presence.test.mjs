// §14 items 17, 28, 29 and 34: presence_state after join, diffs for another client's join and
// leave (same phx_ref), and leaves when a client's socket closes. Checked through phoenix.js's own
// Presence (onSync), so the server's payloads are exactly what the official client consumes.
// Presence keys on conversation:{id} are assumed to be the user ids as strings (README.md).

import {test} from "node:test"
import {
  assert, skip, alice, bob, conversationTopic, openSocket, closeSocket, join, waitFor, Presence
} from "./helpers.mjs"

const refsOf = (presence, key) => ((presence.state[key] || {}).metas || []).map(meta => meta.phx_ref)

async function watchPresence(state, topic){
  const channel = state.socket.channel(topic)
  const presence = new Presence(channel)
  let syncs = 0
  presence.onSync(() => { syncs++ })
  assert.equal((await join(channel)).status, "ok")
  await waitFor(() => syncs >= 1, {what: "first presence onSync"})
  return {channel, presence}
}

async function joinAs(who, topic, presence){
  const key = String(who.id)
  const before = new Set(refsOf(presence, key))
  const state = openSocket(who)
  const channel = state.socket.channel(topic)
  assert.equal((await join(channel)).status, "ok")
  const ref = await waitFor(() => refsOf(presence, key).find(r => !before.has(r)), {what: `${key}'s new phx_ref`})
  return {state, channel, ref, key}
}

test("items 17, 28: presence_state follows the join with its join_ref; metas have unique phx_refs", {skip}, async () => {
  const topic = conversationTopic()
  const state = openSocket(alice())
  try {
    const {channel, presence} = await watchPresence(state, topic)
    const frame = state.frames.find(f => f.event === "presence_state" && f.topic === topic)
    assert.ok(frame, "a presence_state frame arrived")
    assert.equal(frame.join_ref, channel.joinRef())
    assert.equal(frame.ref, null)
    const replyIndex = state.frames.findIndex(f => f.event === "phx_reply" && f.ref === channel.joinRef())
    assert.ok(replyIndex >= 0 && replyIndex < state.frames.indexOf(frame), "join reply first")
    const refs = Object.values(frame.payload).flatMap(p => p.metas.map(meta => meta.phx_ref))
    assert.ok(refs.every(ref => typeof ref === "string" && ref.length > 0))
    assert.equal(new Set(refs).size, refs.length, "phx_refs are unique")
    assert.ok(refsOf(presence, String(alice().id)).length >= 1, "alice sees herself")
  } finally {
    await closeSocket(state)
  }
})

test("item 29: another client's join and leave arrive as diffs with the same phx_ref", {skip}, async () => {
  const topic = conversationTopic()
  const watcher = openSocket(alice())
  let other
  try {
    const {presence} = await watchPresence(watcher, topic)
    other = await joinAs(bob(), topic, presence)
    const joinDiff = watcher.frames.find(f => f.event === "presence_diff" &&
      ((f.payload.joins[other.key] || {}).metas || []).some(meta => meta.phx_ref === other.ref))
    assert.ok(joinDiff, "a presence_diff announced the join")
    assert.equal(typeof joinDiff.payload.leaves, "object")
    assert.equal(joinDiff.ref, null)

    other.channel.leave()
    await waitFor(() => !refsOf(presence, other.key).includes(other.ref), {what: "the leave diff"})
    const leaveDiff = watcher.frames.find(f => f.event === "presence_diff" &&
      ((f.payload.leaves[other.key] || {}).metas || []).some(meta => meta.phx_ref === other.ref))
    assert.ok(leaveDiff, "the leave quotes the joined phx_ref")
    assert.equal(typeof leaveDiff.payload.joins, "object")
  } finally {
    await closeSocket(watcher)
    if(other){ await closeSocket(other.state) }
  }
})

test("item 34: closing the socket from the client emits the presence leave", {skip}, async () => {
  const topic = conversationTopic()
  const watcher = openSocket(alice())
  try {
    const {presence} = await watchPresence(watcher, topic)
    const other = await joinAs(bob(), topic, presence)
    await closeSocket(other.state)
    await waitFor(() => !refsOf(presence, other.key).includes(other.ref), {what: "leave after socket close"})
  } finally {
    await closeSocket(watcher)
  }
})
