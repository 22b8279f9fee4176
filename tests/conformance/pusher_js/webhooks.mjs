// Pusher webhooks caused by the official clients (issue 17 item 4), checked with the npm `pusher`
// 5 SDK's own validator: `pusher.webhook({headers, rawBody}).isValid()`. test_pusher_webhooks.py
// starts Parley and the receivers; each receiver lists what it got at GET .../received.
import test from "node:test"
import {createHmac} from "node:crypto"
import PusherServer from "pusher"
import {Socket} from "phoenix"
import {assert, client, connected, subscribed, fixture, waitFor, WebSocket} from "./helpers.mjs"

const main = () => fixture.apps.main
const HOLD = fixture.hold_ms

/** Every request a receiver got: {headers, body, status}. */
async function received(name){
  const response = await fetch(fixture.receivers[name].replace(/\/hooks$/, "/received"))
  return response.json()
}

/** The npm SDK's verdict on one request, and its events when valid. */
function check(app, request){
  const sdk = new PusherServer({appId: String(app.id), key: app.key, secret: app.secret, host: "127.0.0.1"})
  const webhook = sdk.webhook({headers: request.headers, rawBody: request.body})
  return webhook.isValid() ? webhook.getEvents() : null
}

/** The valid events a receiver got so far (every request must be valid). */
async function events(name = "main"){
  const app = fixture.apps[name]
  const found = []
  for(const request of await received(name)){
    const valid = check(app, request)
    assert.notEqual(valid, null, `an invalid webhook: ${request.body}`)
    if(request.status === 200){ found.push(...valid) }
  }
  return found
}

async function eventually(predicate, what, timeout = 15000){
  const deadline = Date.now() + timeout
  for(;;){
    const got = await events()
    const value = predicate(got)
    if(value){ return value }
    if(Date.now() > deadline){ throw new Error(`timed out waiting for ${what}: ${JSON.stringify(got)}`) }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

const named = (got, name, channel) => got.filter(e => e.name === name && e.channel === channel)

let barriers = 0
/** Wait until every event caused before now has arrived: a channel subscribed and left after
 *  it is held as long as anything held before, and an application's events arrive in order. */
async function barrier(){
  const channel = `barrier-${barriers++}`
  const pusher = client(main())
  await subscribed(pusher, channel)
  pusher.disconnect()
  await eventually(got => named(got, "channel_vacated", channel).length === 1, `the ${channel} barrier`)
}

function endUserToken(sub, channels){
  const b64url = (value) => Buffer.from(value).toString("base64url")
  const header = b64url(JSON.stringify({alg: "HS256", typ: "JWT", kid: main().key}))
  const claims = b64url(JSON.stringify({sub, channels, exp: Math.floor(Date.now() / 1000) + 600}))
  const signature = createHmac("sha256", main().secret).update(`${header}.${claims}`).digest("base64url")
  return `${header}.${claims}.${signature}`
}

test("a receiver that answers 500 twice then 200 gets the event three times, each validly signed", async () => {
  const app = fixture.apps.flaky
  const pusher = client(app)
  try{
    await subscribed(pusher, "flaky-room")
    const deadline = Date.now() + 20000
    let requests = []
    while(requests.length < 3 && Date.now() < deadline){
      requests = await received("flaky")
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    assert.deepEqual(requests.slice(0, 3).map(r => r.status), [500, 500, 200])
    for(const request of requests.slice(0, 3)){
      assert.equal(request.headers["content-type"], "application/json")
      assert.equal(request.headers["x-pusher-key"], app.key)
      assert.deepEqual(check(app, request), [{name: "channel_occupied", channel: "flaky-room"}])
      const body = JSON.parse(request.body)
      assert.ok(Math.abs(body.time_ms - Date.now()) < 60000)
    }
    // The validator can say no: one byte changed, or another secret.
    const tampered = {...requests[0], body: requests[0].body.replace("flaky-room", "flaky-roon")}
    assert.equal(check(app, tampered), null)
    assert.equal(check({...app, secret: main().secret}, requests[0]), null)
  }finally{ pusher.disconnect() }
})

test("client events fire client_event webhooks, with user_id on presence channels", async () => {
  const alice = client(main(), {user: {id: "alice", name: "A"}})
  const bob = client(main(), {user: {id: "bob", name: "B"}})
  try{
    const {channel: a} = await subscribed(alice, "private-wh-chat")
    await subscribed(bob, "private-wh-chat")
    const {channel: ap} = await subscribed(alice, "presence-wh-chat")
    await subscribed(bob, "presence-wh-chat")
    assert.ok(a.trigger("client-typing", {x: 1}))
    assert.ok(ap.trigger("client-wave", {y: 2}))
    const socketId = alice.connection.socket_id
    const [typing] = await eventually(got => { const f = named(got, "client_event", "private-wh-chat"); return f.length ? f : null }, "client_event")
    assert.deepEqual(typing, {name: "client_event", channel: "private-wh-chat", event: "client-typing", data: JSON.stringify({x: 1}), socket_id: socketId})
    const [wave] = await eventually(got => { const f = named(got, "client_event", "presence-wh-chat"); return f.length ? f : null }, "presence client_event")
    assert.deepEqual(wave, {name: "client_event", channel: "presence-wh-chat", event: "client-wave", data: JSON.stringify({y: 2}), socket_id: socketId, user_id: "alice"})
  }finally{ alice.disconnect(); bob.disconnect() }
})

test("a cache channel with nothing cached fires cache_miss", async () => {
  const pusher = client(main())
  try{
    await subscribed(pusher, "cache-wh-empty")
    await eventually(got => named(got, "cache_miss", "cache-wh-empty").length === 1, "cache_miss")
  }finally{ pusher.disconnect() }
})

test("channel_occupied and channel_vacated once for a channel shared by phoenix.js and pusher-js", async () => {
  const socket = new Socket(`ws://${fixture.host}:${fixture.port}/socket`, {transport: WebSocket, params: {token: endUserToken("phx-1", ["wh-both"])}})
  socket.connect()
  const pusher = client(main())
  try{
    const channel = socket.channel(`app:${main().key}:wh-both`)
    await new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject))
    await subscribed(pusher, "wh-both")
    await eventually(got => named(got, "channel_occupied", "wh-both").length === 1, "channel_occupied")
    await new Promise(resolve => channel.leave().receive("ok", resolve))
    pusher.disconnect()  // the last subscriber, of the other protocol
    await eventually(got => named(got, "channel_vacated", "wh-both").length === 1, "channel_vacated")
    await barrier()
    const got = await events()
    assert.equal(named(got, "channel_occupied", "wh-both").length, 1)
    assert.equal(named(got, "channel_vacated", "wh-both").length, 1)
  }finally{ socket.disconnect(); pusher.disconnect() }
})

test("a user who reconnects within the hold causes no member_removed; one who stays away does, after it", async () => {
  const observer = client(main(), {user: {id: "watcher", name: "W"}})
  const user = client(main(), {user: {id: "u-back", name: "U"}})
  try{
    const {channel: watched} = await subscribed(observer, "presence-wh-room")
    const left = []
    watched.bind("pusher:member_removed", (member) => left.push(member.id))
    await subscribed(user, "presence-wh-room")
    await eventually(got => named(got, "member_added", "presence-wh-room").some(e => e.user_id === "u-back"), "member_added")
    user.disconnect()
    // The socket protocol tells the others at once; only the webhook waits. Once the watcher
    // has heard it, the server has seen the user go, and the webhook's hold has begun.
    await waitFor(() => left.includes("u-back"), {what: "pusher:member_removed at the watcher"})
    const again = new Promise(resolve => user.channel("presence-wh-room").bind("pusher:subscription_succeeded", resolve))
    user.connect()  // back at once, well within the hold
    await connected(user)
    await again
    await barrier()  // held after the disconnect's hold began: anything it caused is in by now
    let got = await events()
    const mine = (name) => named(got, name, "presence-wh-room").filter(e => e.user_id === "u-back")
    assert.equal(mine("member_removed").length, 0)
    assert.equal(mine("member_added").length, 1)
    const gone = Date.now()
    user.disconnect()  // and now for good
    got = await eventually(got => named(got, "member_removed", "presence-wh-room").some(e => e.user_id === "u-back") && got, "member_removed")
    assert.ok(Date.now() - gone >= HOLD, "member_removed came before the hold was over")
    assert.equal(mine("member_removed").length, 1)
    assert.equal(named(got, "channel_vacated", "presence-wh-room").length, 0)  // the watcher stays
  }finally{ observer.disconnect(); user.disconnect() }
})
