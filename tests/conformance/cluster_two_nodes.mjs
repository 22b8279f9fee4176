// Issue 18's "must show", with the official phoenix 1.8.16 client: one client on node A, one on
// node C, in one conversation, exchange messages, see each other in phoenix.js's Presence, and
// are both closed by one logout_all. Run by tests/cluster/test_phoenix_js.py (argv: a JSON
// fixture with the two socket URLs, the two users, the conversation and A's HTTP URL).

import assert from "node:assert/strict"
import {Socket, Presence} from "phoenix"
import WebSocket from "ws"

const fixture = JSON.parse(process.argv[2])
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitFor(predicate, what, timeout = 30000){
  const deadline = Date.now() + timeout
  for(;;){
    const value = predicate()
    if(value){ return value }
    if(Date.now() > deadline){ throw new Error(`timed out waiting for ${what}`) }
    await sleep(20)
  }
}

function connect(url, user){
  const socket = new Socket(url, {transport: WebSocket, params: {token: user.token},
                                  reconnectAfterMs: () => 60000})
  const state = {socket, messages: [], closes: []}
  socket.onClose(event => state.closes.push(event.code))
  socket.connect()
  const channel = socket.channel(fixture.topic, {})
  channel.on("new_msg", message => state.messages.push(message.body))
  state.presence = new Presence(channel)
  state.channel = channel
  return new Promise((resolve, reject) => {
    channel.join().receive("ok", () => resolve(state)).receive("error", reject)
      .receive("timeout", () => reject(new Error("join timed out")))
  })
}

const push = (state, body) => new Promise((resolve, reject) => {
  state.channel.push("new_msg", {body}).receive("ok", resolve).receive("error", reject)
    .receive("timeout", () => reject(new Error("push timed out")))
})

const onA = await connect(fixture.a_socket, fixture.alice)
const onC = await connect(fixture.c_socket, fixture.bob)
const keys = state => state.presence.list(key => key).sort()
const both = [fixture.alice.id, fixture.bob.id].sort()
await waitFor(() => JSON.stringify(keys(onA)) === JSON.stringify(both), "presence on A shows both")
await waitFor(() => JSON.stringify(keys(onC)) === JSON.stringify(both), "presence on C shows both")

await push(onA, "hello from A")
await push(onC, "hello from C")
for(const state of [onA, onC]){
  await waitFor(() => state.messages.length === 2, "both messages")
  assert.deepEqual(state.messages, ["hello from A", "hello from C"])
}

const response = await fetch(`${fixture.a_http}/api/auth/logout_all`, {
  method: "POST", headers: {authorization: `Bearer ${fixture.bob.token}`}
})
assert.equal(response.status, 204)
const otherResponse = await fetch(`${fixture.a_http}/api/auth/logout_all`, {
  method: "POST", headers: {authorization: `Bearer ${fixture.alice.token}`}
})
assert.equal(otherResponse.status, 204)
await waitFor(() => onA.closes.includes(1001), "A's socket closed with 1001")
await waitFor(() => onC.closes.includes(1001), "C's socket closed with 1001")
onA.socket.disconnect()
onC.socket.disconnect()
console.log("ok")
