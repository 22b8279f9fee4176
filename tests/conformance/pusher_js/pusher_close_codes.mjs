import test from "node:test"
import {assert, client, fixture, raw, established, waitFor, sleep, connected} from "./helpers.mjs"

async function dismissed(path){
  const conn = raw(path)
  await conn.opened
  const {code} = await conn.closed
  const error = conn.frames.find(f => f.event === "pusher:error")
  assert.ok(error, `a pusher:error before the close ${code}`)
  assert.equal(error.data.code, code)
  return code
}

test("close codes: unknown key 4001, no protocol 4008, protocol 6 4007, archived app 4003, over quota 4004", async () => {
  assert.equal(await dismissed(`/app/nosuchkey?protocol=7`), 4001)
  assert.equal(await dismissed(`/app/${fixture.apps.main.key}`), 4008)
  assert.equal(await dismissed(`/app/${fixture.apps.main.key}?protocol=6`), 4007)
  assert.equal(await dismissed(`/app/${fixture.apps.main.key}?protocol=x`), 4007)
  assert.equal(await dismissed(`/app/${fixture.apps.archived.key}?protocol=7`), 4003)
  const first = raw(`/app/${fixture.apps.single.key}?protocol=7`)
  await established(first)
  assert.equal(await dismissed(`/app/${fixture.apps.single.key}?protocol=7`), 4004)
  first.ws.close()
})

test("pusher-js does not retry a refused key: state failed or unavailable, never connected", async () => {
  const pusher = client({key: "nosuchkey", secret: "x"})
  const states = []
  pusher.connection.bind("state_change", ({current}) => states.push(current))
  await waitFor(() => states.includes("failed") || states.includes("unavailable") || states.includes("disconnected"), {what: "a refused state"})
  assert.ok(!states.includes("connected"))
  pusher.disconnect()
})

test("bad input: non-JSON and non-object frames close with pusher:error; unknown pusher: events get pusher:error and the socket stays", async () => {
  const conn = raw(`/app/${fixture.apps.main.key}?protocol=7`)
  await established(conn)
  conn.send({event: "pusher:nonsense", data: {}})
  await waitFor(() => conn.frames.some(f => f.event === "pusher:error"), {what: "pusher:error"})
  conn.send({event: "pusher:subscribe", data: {channel: "bad:name"}})
  await waitFor(() => conn.frames.some(f => f.event === "pusher:subscription_error"), {what: "subscription_error"})
  conn.send({event: "pusher:subscribe", data: {channel: "x".repeat(201)}})
  await waitFor(() => conn.frames.filter(f => f.event === "pusher:subscription_error").length === 2, {what: "a second subscription_error"})
  conn.send({event: "pusher:ping", data: {}})
  await waitFor(() => conn.frames.some(f => f.event === "pusher:pong"), {what: "still alive"})
  conn.send("this is not json")
  const {code} = await conn.closed
  assert.equal(code, 1007)
  assert.equal(conn.frames.at(-1).event, "pusher:error")
  const arr = raw(`/app/${fixture.apps.main.key}?protocol=7`)
  await established(arr)
  arr.send("[1,2,3]")
  assert.equal((await arr.closed).code, 1007)
})

test("bad input: a frame over socket.max_frame_bytes closes with 1009 after a pusher:error, and nothing is relayed", async () => {
  const conn = raw(`/app/${fixture.apps.main.key}?protocol=7`)
  await established(conn)
  conn.send({event: "client-big", channel: "private-x", data: "x".repeat(70_000)})
  const {code} = await conn.closed
  assert.equal(code, 1009)
  if(fixture.transport === "asgi"){ return }  // Hypercorn closes such a frame itself, with 1009
  assert.equal(conn.frames.at(-1).event, "pusher:error")
  assert.equal(conn.frames.at(-1).data.code, 1009)
})
