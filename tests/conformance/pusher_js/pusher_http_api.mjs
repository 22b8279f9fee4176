// Pusher's HTTP API driven by the official server SDKs (issue 17 items 2, 3): the `pusher` npm
// SDK 5 in this process, the `pusher` PyPI SDK 3 through pusher_sdk.py (one call per run), with
// pusher-js and phoenix.js subscribed. What a Laravel/Django/Rails backend does, unchanged.
import test from "node:test"
import {execFile} from "node:child_process"
import {createHash, createHmac} from "node:crypto"
import {promisify} from "node:util"
import PusherServer from "pusher"
import {Socket} from "phoenix"
import {assert, client, connected, subscribed, fixture, waitFor, raw, established, socketIdOf, sign, WebSocket} from "./helpers.mjs"

const app = () => fixture.apps.main
const run = promisify(execFile)

/** The npm SDK pointed at Parley: what a Node backend configures (docs/pusher.md). */
function server(a = app(), {secret = a.secret, appId = String(a.id)} = {}){
  return new PusherServer({appId, key: a.key, secret, host: fixture.host, port: String(fixture.port), useTLS: false})
}

/** One call of the PyPI SDK: {result} or {error: its exception class, message}. */
async function python(call, args, {secret = null} = {}){
  const request = {host: fixture.host, port: fixture.port, app: app(), secret, call, args}
  const {stdout} = await run(fixture.python, [fixture.pusher_sdk, JSON.stringify(request)])
  return JSON.parse(stdout)
}

const b64url = (value) => Buffer.from(value).toString("base64url")

function phoenix(sub, channels){
  const header = b64url(JSON.stringify({alg: "HS256", typ: "JWT", kid: app().key}))
  const claims = b64url(JSON.stringify({sub, channels, exp: Math.floor(Date.now() / 1000) + 600}))
  const signature = createHmac("sha256", app().secret).update(`${header}.${claims}`).digest("base64url")
  const socket = new Socket(`ws://${fixture.host}:${fixture.port}/socket`, {transport: WebSocket, params: {token: `${header}.${claims}.${signature}`}})
  socket.connect()
  return socket
}

const joined = (channel) => new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject))

/** A raw socket signed in as `userId` (to read the exact close code). */
async function rawSignedIn(userId){
  const conn = raw(`/app/${app().key}?protocol=7&client=js&version=8.6.0`)
  await conn.opened
  const socketId = socketIdOf(await established(conn))
  const user_data = JSON.stringify({id: userId})
  conn.send({event: "pusher:signin", data: {auth: `${app().key}:${sign(app().secret, `${socketId}::user::${user_data}`)}`, user_data}})
  await waitFor(() => conn.frames.find(f => f.event === "pusher:signin_success"), {what: "signin_success"})
  return conn
}

/** A signed request as the SDKs sign it, with `timestamp` of our choosing (a captured one). */
function signedPath(path, body, timestamp){
  const params = {auth_key: app().key, auth_timestamp: String(timestamp), auth_version: "1.0", body_md5: createHash("md5").update(body).digest("hex")}
  const sorted = Object.keys(params).sort().map(k => `${k}=${params[k]}`).join("&")
  return `${path}?${sorted}&auth_signature=${sign(app().secret, `POST\n${path}\n${sorted}`)}`
}

/** Trigger a marker with the npm SDK and check it is all `seen` got: the refusals before it
 *  delivered nothing (one socket's frames arrive in order). */
async function onlyTheMarker(channel, seen){
  const response = await server().trigger(channel, "marker", {n: 1})
  assert.equal(response.status, 200)
  await waitFor(() => seen.includes("marker"), {what: "the marker"})
  assert.deepEqual(seen, ["marker"])
}

test("pusher-js on public, private and presence channels receives what the Python SDK triggers", async () => {
  const names = ["py-news", "private-py-orders", "presence-py-room"]
  const p = client(app(), {user: {id: "py-1", name: "Py"}})
  try{
    const got = {}
    for(const name of names){
      const {channel} = await subscribed(p, name)
      got[name] = []
      channel.bind("py-event", (d) => got[name].push(d))
    }
    assert.deepEqual(await python("trigger", [names, "py-event", {n: 1}]), {result: {}})
    await waitFor(() => names.every(n => got[n].length === 1), {what: "all three channels"})
    for(const name of names){ assert.deepEqual(got[name][0], {n: 1}) }
    const batch = [{channel: "py-news", name: "py-event", data: {n: 2}}, {channel: "presence-py-room", name: "py-event", data: "text"}]
    assert.deepEqual(await python("trigger_batch", [batch]), {result: {}})
    await waitFor(() => got["py-news"].length === 2 && got["presence-py-room"].length === 2, {what: "the batch"})
    assert.deepEqual(got["py-news"][1], {n: 2})
    assert.equal(got["presence-py-room"][1], "text")
  }finally{ p.disconnect() }
})

test("a phoenix.js client on app:K:C receives the same SDK-triggered events as pusher-js on C", async () => {
  const socket = phoenix("phx-sdk", ["sdk-scores"])
  const p = client()
  try{
    const channel = socket.channel(`app:${app().key}:sdk-scores`)
    const phx = []
    channel.on("goal", (payload) => phx.push(payload))
    await joined(channel)
    const psh = []
    const {channel: pc} = await subscribed(p, "sdk-scores")
    pc.bind("goal", (data) => psh.push(data))
    assert.deepEqual(await python("trigger", ["sdk-scores", "goal", {team: "red"}]), {result: {}})
    const response = await server().trigger("sdk-scores", "goal", {team: "blue"})
    assert.equal(response.status, 200)
    assert.deepEqual(await response.json(), {})
    await waitFor(() => phx.length === 2 && psh.length === 2, {what: "both clients, both SDKs"})
    assert.deepEqual(phx, [{team: "red"}, {team: "blue"}])
    assert.deepEqual(psh, [{team: "red"}, {team: "blue"}])
  }finally{ socket.disconnect(); p.disconnect() }
})

test("the SDKs' channel queries and info count phoenix.js and pusher-js subscribers as one view", async () => {
  const socket = phoenix("view-phx", ["presence-view"])
  const p = client(app(), {user: {id: "view-psh", name: "P"}})
  try{
    await subscribed(p, "presence-view")
    await joined(socket.channel(`app:${app().key}:presence-view`))
    const info = await python("channel_info", ["presence-view", ["user_count", "subscription_count"]])
    assert.deepEqual(info, {result: {occupied: true, user_count: 2, subscription_count: 2}})
    const users = await python("users_info", ["presence-view"])
    assert.deepEqual(users.result.users.map(u => u.id).sort(), ["view-phx", "view-psh"])
    const listed = await python("channels_info", ["presence-", ["user_count"]])
    assert.deepEqual(listed.result.channels["presence-view"], {user_count: 2})
    const response = await server().trigger(["presence-view", "view-empty"], "e", {x: 1}, {info: "user_count,subscription_count"})
    assert.deepEqual(await response.json(), {channels: {"presence-view": {user_count: 2, subscription_count: 2}, "view-empty": {subscription_count: 0}}})
    const single = await server().get({path: "/channels/presence-view", params: {info: "user_count"}})
    assert.deepEqual(await single.json(), {occupied: true, user_count: 2})
    const refused = await python("users_info", ["view-empty"])
    assert.equal(refused.error, "PusherBadRequest")
  }finally{ socket.disconnect(); p.disconnect() }
})

test("signin + sendToUser reaches the signed-in pusher-js client; terminateUserConnections closes it with 4009", async () => {
  const p = client(app(), {user: {id: "term-1", user_info: {name: "T"}}})
  try{
    await connected(p)
    const got = []
    p.user.bind("note", (d) => got.push(d))
    p.signin()
    await p.user.signinDonePromise
    await waitFor(() => p.user.serverToUserChannel && p.user.serverToUserChannel.subscribed, {what: "#server-to-user-term-1"})
    assert.equal((await server().sendToUser("term-1", "note", {from: "node"})).status, 200)
    assert.deepEqual(await python("send_to_user", ["term-1", "note", {from: "python"}]), {result: {}})
    await waitFor(() => got.length === 2, {what: "both SDKs' sendToUser"})
    assert.deepEqual(got, [{from: "node"}, {from: "python"}])
    const errors = [], states = []
    p.connection.bind("error", (e) => errors.push(e))
    p.connection.bind("state_change", ({current}) => states.push(current))
    const rawSocket = await rawSignedIn("term-1")
    const response = await server().terminateUserConnections("term-1")
    assert.equal(response.status, 200)
    assert.deepEqual(await response.json(), {})
    assert.equal((await rawSocket.closed).code, 4009)
    await waitFor(() => errors.some(e => e.data && e.data.code === 4009), {what: "pusher:error 4009"})
    await waitFor(() => p.connection.state === "disconnected", {what: "pusher-js disconnected"})
    assert.ok(!states.includes("connecting"), `pusher-js does not reconnect after 4009: ${states}`)
    // The Python SDK 3.3.4's short path, /users/{id}/terminate_connections.
    const other = await rawSignedIn("term-2")
    assert.deepEqual(await python("terminate_user_connections", ["term-2"]), {result: {}})
    assert.equal((await other.closed).code, 4009)
  }finally{ p.disconnect() }
})

test("a rejected trigger is a failure the Node SDK reports: wrong secret 401, 10,241-byte data 413", async () => {
  const p = client()
  try{
    const seen = []
    const {channel} = await subscribed(p, "rejects")
    channel.bind_global((event) => { if(!event.startsWith("pusher")){ seen.push(event) } })
    await assert.rejects(server(app(), {secret: "0".repeat(40)}).trigger("rejects", "bad", {}), (e) => e.name === "PusherRequestError" && e.status === 401)
    await assert.rejects(server().trigger("rejects", "big", "x".repeat(10_241)), (e) => e.status === 413)
    await assert.rejects(server(app(), {appId: "999999999"}).trigger("rejects", "nobody", {}), (e) => e.status === 404)
    assert.equal((await python("trigger", ["rejects", "bad", {}], {secret: "0".repeat(40)})).error, "PusherBadAuth")
    const big = await python("trigger", ["rejects", "big", "x".repeat(10_241)])
    assert.equal(big.error, "PusherBadStatus")
    assert.match(big.message, /^413: /)
    await onlyTheMarker("rejects", seen)
  }finally{ p.disconnect() }
})

test("bad input: stale and replayed signatures, bad body_md5, 11 events, 101 channels, non-JSON, unknown app: the documented status, nothing delivered", async () => {
  const p = client()
  try{
    const seen = []
    const {channel} = await subscribed(p, "bad-input")
    channel.bind_global((event) => { if(!event.startsWith("pusher")){ seen.push(event) } })
    const path = `/apps/${app().id}/events`
    const body = JSON.stringify({name: "bad", data: "{}", channel: "bad-input"})
    const post = (target, content = body) => fetch(`${fixture.http_base}${target}`, {method: "POST", headers: {"content-type": "application/json"}, body: content})
    const now = Math.floor(Date.now() / 1000)
    for(const stale of [now - 601, now + 601]){ assert.equal((await post(signedPath(path, body, stale))).status, 401) }
    // A captured request is good within the window and refused once replayed after it.
    const captured = signedPath(path, JSON.stringify({name: "replayed", data: "{}", channel: "elsewhere"}), now - 590)
    assert.equal((await post(captured, JSON.stringify({name: "replayed", data: "{}", channel: "elsewhere"}))).status, 200)
    assert.equal((await post(signedPath(path, body, now - 601))).status, 401)
    // Signed by the SDK itself: a changed body (body_md5), a body that is no JSON.
    const sdk = server()
    const signedBy = (content) => `${path}?${sdk.createSignedQueryString({method: "POST", path, body: content})}`
    assert.equal((await post(signedBy(body), body.replace("bad-input", "bad-inpux"))).status, 401)
    assert.equal((await post(signedBy("not json"), "not json")).status, 400)
    const eleven = Array.from({length: 11}, () => ({channel: "bad-input", name: "bad", data: "x"}))
    await assert.rejects(sdk.triggerBatch(eleven), (e) => e.status === 400)
    const many = Array.from({length: 100}, (_, i) => `c${i}`).concat(["bad-input"])
    await assert.rejects(sdk.post({path: "/events", body: {name: "bad", data: "x", channels: many}}), (e) => e.status === 400)
    await assert.rejects(server(app(), {appId: "424242424"}).trigger("bad-input", "bad", {}), (e) => e.status === 404)
    await onlyTheMarker("bad-input", seen)
  }finally{ p.disconnect() }
})
