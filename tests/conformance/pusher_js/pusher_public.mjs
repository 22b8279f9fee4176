import test from "node:test"
import {assert, client, connected, subscribed, trigger, fixture, waitFor, raw, established, socketIdOf} from "./helpers.mjs"

test("connects: socket_id like 123.456, a public channel gets a triggered event", async () => {
  const pusher = client()
  try{
    const socketId = await connected(pusher)
    assert.match(socketId, /^\d+\.\d+$/)
    const {channel} = await subscribed(pusher, "orders")
    const got = []
    channel.bind("created", (data) => got.push(data))
    await trigger(fixture.apps.main, "created", {channel: "orders", data: JSON.stringify({id: 7})})
    await waitFor(() => got.length === 1, {what: "the event"})
    assert.deepEqual(got[0], {id: 7})
  }finally{ pusher.disconnect() }
})

test("connection_established carries a non-zero activity_timeout; ping is answered with pong", async () => {
  const conn = raw(`/app/${fixture.apps.main.key}?protocol=7&client=js&version=8.6.0&flash=false`)
  await conn.opened
  const first = await established(conn)
  assert.equal(conn.frames[0], first)
  assert.ok(JSON.parse(first.data).activity_timeout > 0)
  conn.send({event: "pusher:ping", data: {}})
  await waitFor(() => conn.frames.find(f => f.event === "pusher:pong"), {what: "pong"})
  conn.ws.close()
})
