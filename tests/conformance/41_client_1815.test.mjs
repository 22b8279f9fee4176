// Item 41, the phoenix.js 1.8.15 half: that client does not reconnect after a 1000 close, so a
// server close meant to be followed by a reconnect must use 1001/1011/1012 (§9.2). This runs the
// 1.8.15 client through the two closes Parley makes: an operator close (1012) and an idle
// timeout (1001), and checks it reconnects and rejoins each time.
import {test} from "node:test"
import {Socket, LongPoll} from "phoenix-1815"
import {
  WebSocket, assert, fixture, skip, conversationTopic, operatorPost, waitFor, longPoll, webSocketOnly
} from "./helpers.mjs"

const erin = () => fixture.users_1815[0]

function open1815(who, opts = {}){
  const socket = new Socket(fixture.url, {
    transport: longPoll ? LongPoll : WebSocket,
    params: {token: who.token},
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 100,
    ...opts
  })
  const state = {socket, opens: 0, closes: []}
  socket.onOpen(() => { state.opens++ })
  socket.onClose(event => { state.closes.push(event.code) })
  socket.connect()
  return state
}

test("item 41 (1.8.15): after an operator close (1012) the client reconnects and rejoins", {skip}, async () => {
  const state = open1815(erin())
  try {
    const channel = state.socket.channel(conversationTopic())
    let joins = 0
    channel.join().receive("ok", () => { joins++ })
    await waitFor(() => joins === 1, {what: "first join"})
    const response = await operatorPost(`/debug/sockets/${encodeURIComponent(erin().id)}/close`)
    assert.ok(response.ok, `debug close answered ${response.status}`)
    await waitFor(() => state.closes.length >= 1, {what: "server close"})
    assert.equal(state.closes[0], longPoll ? 3410 : 1012)  // long polling: session gone
    await waitFor(() => state.opens >= 2 && joins >= 2, {what: "reconnect and rejoin"})
  } finally {
    await new Promise(resolve => state.socket.disconnect(resolve))
  }
})

test("item 41 (1.8.15): after an idle close (1001) the client reconnects",
  {skip: webSocketOnly("no heartbeats and no idle close of a polling client (§8.6)")}, async () => {
  // No heartbeats: the server closes the connection after its idle timeout.
  const state = open1815(erin(), {heartbeatIntervalMs: 600_000})
  try {
    await waitFor(() => state.opens >= 1, {what: "open"})
    const timeout = (fixture.heartbeat_timeout_seconds + 5) * 1000
    await waitFor(() => state.closes.length >= 1, {timeout, what: "idle close"})
    assert.equal(state.closes[0], 1001)
    await waitFor(() => state.opens >= 2, {what: "reconnect"})
  } finally {
    await new Promise(resolve => state.socket.disconnect(resolve))
  }
})
