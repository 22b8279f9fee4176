import test from "node:test"
import {assert, client, connected, subscribed, trigger, fixture, waitFor, sleep, sign, Pusher} from "./helpers.mjs"

const app = () => fixture.apps.main

test("private channel: a signed subscription gets its events; a bad signature is a subscription_error and the socket stays usable", async () => {
  const good = client()
  const bad = client(app(), {tamper: (auth) => auth.slice(0, -1) + (auth.endsWith("0") ? "1" : "0")})
  try{
    const {channel} = await subscribed(good, "private-ledger")
    const got = []
    channel.bind("entry", (data) => got.push(data))
    await connected(bad)
    const refused = await subscribed(bad, "private-ledger").then(() => null, (e) => e.error)
    assert.equal(refused.type, "AuthError")
    assert.equal(refused.status, 401)
    // The refused socket is still connected and can use public channels.
    const pub = await subscribed(bad, "public-after-refusal")
    assert.ok(pub.channel.subscribed)
    assert.equal(bad.connection.state, "connected")
    const badGot = []
    bad.channel("private-ledger").bind("entry", (data) => badGot.push(data))
    await trigger(app(), "entry", {channel: "private-ledger", data: {n: 1}})
    await waitFor(() => got.length === 1, {what: "the private event"})
    assert.deepEqual(got[0], {n: 1})
    await sleep(100)
    assert.equal(badGot.length, 0)
  }finally{ good.disconnect(); bad.disconnect() }
})

test("presence: two tabs of one user are one member_added; member_removed only after the last tab", async () => {
  const watcher = client(app(), {user: {id: "w", name: "Watcher"}})
  const tab1 = client(app(), {user: {id: "u1", name: "Una"}})
  const tab2 = client(app(), {user: {id: "u1", name: "Una"}})
  try{
    const {channel, data} = await subscribed(watcher, "presence-room")
    assert.equal(data.count, 1)
    assert.deepEqual(channel.members.me, {id: "w", info: {name: "Watcher"}})
    const added = [], removed = []
    channel.bind("pusher:member_added", (m) => added.push(m))
    channel.bind("pusher:member_removed", (m) => removed.push(m))
    const first = await subscribed(tab1, "presence-room")
    assert.equal(first.data.count, 2)
    await waitFor(() => added.length === 1, {what: "member_added"})
    assert.deepEqual(added[0], {id: "u1", info: {name: "Una"}})
    const second = await subscribed(tab2, "presence-room")
    assert.equal(second.data.count, 2)
    assert.deepEqual(Object.keys(second.data.members).sort(), ["u1", "w"])
    tab1.disconnect()
    await sleep(400)
    assert.equal(added.length, 1, "a second tab adds nothing")
    assert.equal(removed.length, 0, "the user is still there on tab 2")
    tab2.disconnect()
    await waitFor(() => removed.length === 1, {what: "member_removed"})
    assert.equal(removed[0].id, "u1")
    assert.equal(channel.members.count, 1)
  }finally{ watcher.disconnect(); tab1.disconnect(); tab2.disconnect() }
})

test("presence: a user listed in subscription_succeeded is never member_added after it (subscribing right after them)", async () => {
  // The second subscription lands within the server's presence batch (100 ms) of the first one's
  // track, so its snapshot lists a user whose join diff is still to be broadcast.
  const first = client(app(), {user: {id: "quick-a", name: "A"}})
  const second = client(app(), {user: {id: "quick-b", name: "B"}})
  try{
    await connected(first)
    await connected(second)
    const added = []
    second.connection.bind("message", (m) => {
      if(m.channel === "presence-quick" && m.event === "pusher_internal:member_added"){ added.push(m.data.user_id) }
    })
    await subscribed(first, "presence-quick")
    const {channel, data} = await subscribed(second, "presence-quick")
    assert.deepEqual(Object.keys(data.members).sort(), ["quick-a", "quick-b"])
    await sleep(400)
    assert.deepEqual(added, [], "no member_added for a listed user")
    assert.equal(channel.members.count, 2)
  }finally{ first.disconnect(); second.disconnect() }
})

test("presence: channel_data one byte off what was signed is refused; the exact string is accepted", async () => {
  const data = JSON.stringify({user_id: "x", user_info: {name: "X"}})
  const pusher = client(app(), {user: {id: "x"}})
  try{
    const socketId = await connected(pusher)
    const auth = `${app().key}:${sign(app().secret, `${socketId}:presence-odd:${data}`)}`
    const seen = []
    pusher.connection.bind("message", (m) => { if(m.channel === "presence-odd"){ seen.push(m) } })
    pusher.send_event("pusher:subscribe", {channel: "presence-odd", auth, channel_data: data + " "})
    await waitFor(() => seen.length === 1, {what: "subscription_error"})
    assert.equal(seen[0].event, "pusher:subscription_error")
    assert.equal(seen[0].data.status, 401)
    pusher.send_event("pusher:subscribe", {channel: "presence-odd", auth, channel_data: data})
    await waitFor(() => seen.length === 2, {what: "subscription_succeeded"})
    assert.equal(seen[1].event, "pusher_internal:subscription_succeeded")
    assert.deepEqual(seen[1].data.presence.ids, ["x"])
  }finally{ pusher.disconnect() }
})

test("client events: relayed to the others on private and presence channels, not echoed, with user_id on presence", async () => {
  const a = client(app(), {user: {id: "a", name: "A"}})
  const b = client(app(), {user: {id: "b", name: "B"}})
  try{
    const pa = (await subscribed(a, "private-chat")).channel
    const pb = (await subscribed(b, "private-chat")).channel
    const toA = [], toB = []
    pa.bind("client-typing", (d) => toA.push(d))
    pb.bind("client-typing", (d, meta) => toB.push({d, meta}))
    assert.ok(pa.trigger("client-typing", {who: "a"}))
    await waitFor(() => toB.length === 1, {what: "the client event"})
    assert.deepEqual(toB[0].d, {who: "a"})
    const ra = (await subscribed(a, "presence-chat")).channel
    const rb = (await subscribed(b, "presence-chat")).channel
    const seen = []
    rb.bind("client-wave", (d, meta) => seen.push({d, meta}))
    ra.trigger("client-wave", {x: 1})
    await waitFor(() => seen.length === 1, {what: "the presence client event"})
    assert.equal(seen[0].meta.user_id, "a")
    await sleep(100)
    assert.equal(toA.length, 0, "not echoed to the sender")
  }finally{ a.disconnect(); b.disconnect() }
})

test("client events: refused on public channels, when the app disables them, and over 10 per second (4301)", async () => {
  const a = client(), b = client()
  const quiet = client(fixture.apps.quiet), quiet2 = client(fixture.apps.quiet)
  try{
    const pub = (await subscribed(a, "lobby")).channel
    const pubB = (await subscribed(b, "lobby")).channel
    const errors = []
    a.connection.bind("error", (e) => errors.push(e))
    const relayed = []
    pubB.bind("client-x", (d) => relayed.push(d))
    pub.trigger("client-x", {})  // pusher-js itself refuses public ones; send the frame anyway
    a.send_event("client-x", {}, "lobby")
    await waitFor(() => errors.length >= 1, {what: "pusher:error"})
    const priv = (await subscribed(a, "private-fast")).channel
    const privB = (await subscribed(b, "private-fast")).channel
    const fast = []
    privB.bind("client-n", (d) => fast.push(d))
    errors.length = 0
    for(let i = 0; i < 15; i++){ priv.trigger("client-n", {i}) }
    await waitFor(() => errors.some(e => e.data && e.data.code === 4301), {what: "4301"})
    await sleep(150)
    assert.ok(fast.length >= 1 && fast.length <= 11, `relayed ${fast.length}`)
    assert.equal(relayed.length, 0)
    const q = (await subscribed(quiet, "private-q")).channel
    const q2 = (await subscribed(quiet2, "private-q")).channel
    const qErrors = [], qGot = []
    quiet.connection.bind("error", (e) => qErrors.push(e))
    q2.bind("client-q", (d) => qGot.push(d))
    q.trigger("client-q", {})
    await waitFor(() => qErrors.length === 1, {what: "the disabled app's pusher:error"})
    await sleep(100)
    assert.equal(qGot.length, 0)
  }finally{ a.disconnect(); b.disconnect(); quiet.disconnect(); quiet2.disconnect() }
})

test("a trigger with socket_id does not reach that socket", async () => {
  const a = client(), b = client()
  try{
    const ca = (await subscribed(a, "news")).channel
    const cb = (await subscribed(b, "news")).channel
    const gotA = [], gotB = []
    ca.bind("item", (d) => gotA.push(d))
    cb.bind("item", (d) => gotB.push(d))
    await trigger(app(), "item", {channel: "news", data: {k: 1}, socket_id: a.connection.socket_id})
    await waitFor(() => gotB.length === 1, {what: "b's event"})
    await sleep(100)
    assert.equal(gotA.length, 0)
  }finally{ a.disconnect(); b.disconnect() }
})

test("cache channels: pusher:cache_miss first, then the last event at subscribe", async () => {
  const a = client(), b = client()
  try{
    const misses = []
    a.connection.bind("message", (m) => { if(m.event === "pusher:cache_miss"){ misses.push(m) } })
    await subscribed(a, "cache-weather")
    await waitFor(() => misses.length === 1, {what: "cache_miss"})
    assert.equal(misses[0].channel, "cache-weather")
    await trigger(app(), "report", {channel: "cache-weather", data: JSON.stringify({sun: true})})
    const got = []
    const channel = b.subscribe("cache-weather")
    channel.bind("report", (d) => got.push(d))
    await waitFor(() => got.length === 1, {what: "the cached event"})
    assert.deepEqual(got[0], {sun: true})
  }finally{ a.disconnect(); b.disconnect() }
})

test("private-encrypted: the opaque {nonce, ciphertext} is relayed and pusher-js decrypts it with the app's shared_secret", async () => {
  const {createHash, randomBytes} = await import("node:crypto")
  const nacl = (await import("tweetnacl")).default
  const masterKey = randomBytes(32)
  const name = "private-encrypted-vault"
  const key = createHash("sha256").update(name).update(masterKey).digest()
  const pusher = new Pusher(app().key, {
    cluster: "parley", wsHost: fixture.host, wsPort: fixture.port, forceTLS: false,
    enabledTransports: ["ws"], disableStats: true,
    channelAuthorization: {customHandler: ({socketId, channelName}, callback) => callback(null, {
      auth: `${app().key}:${sign(app().secret, `${socketId}:${channelName}`)}`,
      shared_secret: key.toString("base64"),
    })},
  })
  try{
    const {channel} = await subscribed(pusher, name)
    const got = []
    channel.bind("secret", (d) => got.push(d))
    const nonce = randomBytes(24)
    const box = nacl.secretbox(Buffer.from(JSON.stringify({pin: 1234})), nonce, key)
    const data = JSON.stringify({nonce: nonce.toString("base64"), ciphertext: Buffer.from(box).toString("base64")})
    await trigger(app(), "secret", {channel: name, data})
    await waitFor(() => got.length === 1, {what: "the decrypted event"})
    assert.deepEqual(got[0], {pin: 1234})
    // pusher-js refuses client events on encrypted channels itself; so does the server.
    const errors = []
    pusher.connection.bind("error", (e) => errors.push(e))
    pusher.send_event("client-x", {}, name)
    await waitFor(() => errors.length === 1, {what: "pusher:error"})
  }finally{ pusher.disconnect() }
})
