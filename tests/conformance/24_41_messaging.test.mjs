// §14 items 13, 24 and 41: pushes with replies and broadcasts between real phoenix.js clients,
// V2 and V1 in the same broadcast, and the three chat flavours of DESIGN.md §5:
// conversation:{id} new_msg, private_chat:{id} send (Daveslist), room:chat send_msg (CompanyApi).

import {test} from "node:test"
import {randomUUID} from "node:crypto"
import {
  assert, fixture, skip, alice, bob, conversationTopic, openSocket, closeSocket, join, push,
  collect, waitFor, v1Codec, longPoll, RawClient
} from "./helpers.mjs"

/**
 * The V1 member: phoenix.js with a V1 codec, or over long polling (where phoenix.js cannot speak
 * V1) the raw client with vsn=1.0.0. `seen` collects new_msg payloads, `raw` the frames as text.
 */
async function v1Member(who, topic){
  const raw = []
  if(!longPoll){
    const state = openSocket(who, v1Codec(raw))
    const channel = state.socket.channel(topic)
    const seen = collect(channel, "new_msg")
    assert.equal((await join(channel)).status, "ok", `V1 join ${topic}`)
    return {raw, seen, close: () => closeSocket(state)}
  }
  const client = await RawClient.open({token: who.token, vsn: "1.0.0"})
  client.send({topic, event: "phx_join", payload: {}, ref: "1"})
  const joined = await client.next(f => f.ref === "1")
  assert.equal(joined.payload.status, "ok", `V1 join ${topic}`)
  return {
    raw: client.rawFrames,
    get seen(){ return client.frames.filter(f => f.event === "new_msg").map(f => f.payload) },
    close: () => client.close()
  }
}

test("items 13, 24, 41: new_msg is acked with {id, seq} and broadcast to V2 and V1 members", {skip}, async () => {
  const topic = conversationTopic()
  const sender = openSocket(alice())
  const v2 = openSocket(bob())
  const v1 = await v1Member(bob(), topic)
  const v1Raw = v1.raw
  try {
    const senderChannel = sender.socket.channel(topic)
    const v2Channel = v2.socket.channel(topic)
    const v2Seen = collect(v2Channel, "new_msg")
    for(const channel of [senderChannel, v2Channel]){
      assert.equal((await join(channel)).status, "ok", `join ${channel.topic}`)
    }
    const clientId = randomUUID()
    const body = `hello from alice ${clientId}`
    const ack = await push(senderChannel, "new_msg", {body, client_id: clientId})
    assert.equal(ack.status, "ok")
    assert.ok(ack.response.id !== undefined, "ack has the message id")
    assert.ok(Number.isInteger(ack.response.seq), "ack has the sequence number")

    const mine = (seen) => seen.find(p => p.client_id === clientId || p.body === body)
    const onV2 = await waitFor(() => mine(v2Seen), {what: "V2 delivery"})
    const onV1 = await waitFor(() => mine(v1.seen), {what: "V1 delivery"})
    for(const delivered of [onV2, onV1]){
      assert.equal(delivered.body, body)
      assert.equal(delivered.id, ack.response.id)
      assert.equal(delivered.seq, ack.response.seq)
      assert.equal(String(delivered.sender_id), String(alice().id))
      assert.ok(delivered.inserted_at, "inserted_at is set")
    }

    const v2Frame = v2.frames.find(f => f.event === "new_msg" && f.payload.body === body)
    assert.equal(v2Frame.ref, null)
    assert.ok(v2Frame.join_ref === null || v2Frame.join_ref === v2Channel.joinRef())
    const v1Frame = v1Raw.map(raw => JSON.parse(raw)).find(f => f.event === "new_msg" && f.payload.body === body)
    assert.deepEqual(Object.keys(v1Frame).sort(), ["event", "payload", "ref", "topic"])
    assert.equal(v1Frame.ref, null)

    // resending the same client_id returns the same message, not a duplicate
    const again = await push(senderChannel, "new_msg", {body, client_id: clientId})
    assert.equal(again.status, "ok")
    assert.equal(again.response.id, ack.response.id)
    assert.equal(again.response.seq, ack.response.seq)
  } finally {
    await Promise.all([sender, v2].map(closeSocket).concat([v1.close()]))
  }
})

test("item 41: private_chat send reaches the recipient's private_chat topic", {skip}, async () => {
  const from = openSocket(alice())
  const to = openSocket(bob())
  try {
    const outbox = from.socket.channel(`private_chat:${alice().id}`)
    const inbox = to.socket.channel(`private_chat:${bob().id}`)
    const received = collect(inbox, "send")
    assert.equal((await join(outbox)).status, "ok")
    assert.equal((await join(inbox)).status, "ok")
    const message = `private ${randomUUID()}`
    outbox.push("send", {to: bob().id, message}, 3000)
    const got = await waitFor(() => received.find(p => p.message === message), {what: "private_chat send"})
    assert.equal(String(got.to), String(bob().id))
    assert.equal(String(got.from), String(alice().id))
    assert.ok(got.id !== undefined)
    assert.ok(got.inserted_at)
  } finally {
    await Promise.all([from, to].map(closeSocket))
  }
})

test("item 41: private_chat of another user is refused", {skip}, async () => {
  const state = openSocket(alice())
  try {
    const channel = state.socket.channel(`private_chat:${bob().id}`)
    const reply = await join(channel)
    assert.equal(reply.status, "error")
    channel.leave()
  } finally {
    await closeSocket(state)
  }
})

test("item 41: room:chat send_msg delivers receive_msg to the recipient", {skip}, async () => {
  const from = openSocket(alice())
  const to = openSocket(bob())
  try {
    const sender = from.socket.channel("room:chat")
    const recipient = to.socket.channel("room:chat")
    const received = collect(recipient, "receive_msg")
    assert.equal((await join(sender)).status, "ok")
    assert.equal((await join(recipient)).status, "ok")
    const message = `room chat ${randomUUID()}`
    const conv = fixture.direct_conversation_id ?? fixture.conversation_id
    sender.push("send_msg", {user: bob().id, conv, message}, 3000)
    const got = await waitFor(() => received.find(p => p.message && p.message.content === message), {what: "receive_msg"})
    assert.ok(got.message.id !== undefined)
    assert.equal(String(got.message.sender_id), String(alice().id))
    assert.equal(String(got.message.conversation_id), String(conv))
    assert.ok(got.message.date)
  } finally {
    await Promise.all([from, to].map(closeSocket))
  }
})
