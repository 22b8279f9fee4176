import test from "node:test"
import {assert, client, connected, subscribed, trigger, fixture, waitFor, sleep} from "./helpers.mjs"

const app = () => fixture.apps.main

test("signin: signin_success, then an event to #server-to-user-{id} reaches every socket of that user", async () => {
  const one = client(app(), {user: {id: "sam", user_info: {name: "Sam"}}})
  const two = client(app(), {user: {id: "sam"}})
  const other = client(app(), {user: {id: "tom"}})
  try{
    for(const p of [one, two, other]){ await connected(p); p.signin() }
    const got = {one: [], two: [], other: []}
    one.user.bind("hello", (d) => got.one.push(d))
    two.user.bind("hello", (d) => got.two.push(d))
    other.user.bind("hello", (d) => got.other.push(d))
    for(const p of [one, two, other]){ await p.user.signinDonePromise }
    await waitFor(() => [one, two, other].every(p => p.user.serverToUserChannel && p.user.serverToUserChannel.subscribed), {what: "#server-to-user subscriptions"})
    await trigger(app(), "hello", {user_id: "sam", data: {hi: 1}})
    await waitFor(() => got.one.length === 1 && got.two.length === 1, {what: "both of sam's sockets"})
    assert.deepEqual(got.one[0], {hi: 1})
    await sleep(100)
    assert.equal(got.other.length, 0)
  }finally{ one.disconnect(); two.disconnect(); other.disconnect() }
})

test("signin: a bad signature is a pusher:error 4009; #server-to-user of someone else is refused", async () => {
  const liar = client(app(), {user: {id: "eve"}, tamper: (a) => a + "0"})
  try{
    await connected(liar)
    const errors = []
    liar.connection.bind("error", (e) => errors.push(e))
    liar.signin()
    await waitFor(() => errors.length === 1, {what: "pusher:error"})
    assert.equal(errors[0].data.code, 4009)
    // pusher-js will not subscribe to a #server-to-user channel itself: send the frame.
    const seen = []
    liar.connection.bind("message", (m) => { if(m.channel === "#server-to-user-sam"){ seen.push(m) } })
    liar.send_event("pusher:subscribe", {channel: "#server-to-user-sam", auth: ""})
    await waitFor(() => seen.length === 1, {what: "subscription_error"})
    assert.equal(seen[0].event, "pusher:subscription_error")
    assert.equal(seen[0].data.status, 401)
    assert.equal(liar.connection.state, "connected")
  }finally{ liar.disconnect() }
})

test("watchlist: online and offline events of watched users", async () => {
  const watcher = client(app(), {user: {id: "boss", watchlist: ["w1", "w2"]}})
  const w1 = client(app(), {user: {id: "w1"}})
  try{
    await connected(watcher)
    const events = []
    watcher.user.watchlist.bind("online", (e) => events.push(["online", e.user_ids]))
    watcher.user.watchlist.bind("offline", (e) => events.push(["offline", e.user_ids]))
    watcher.signin()
    await watcher.user.signinDonePromise
    await connected(w1)
    w1.signin()
    await waitFor(() => events.length === 1, {what: "online"})
    assert.deepEqual(events[0], ["online", ["w1"]])
    w1.disconnect()
    await waitFor(() => events.length === 2, {what: "offline"})
    assert.deepEqual(events[1], ["offline", ["w1"]])
  }finally{ watcher.disconnect(); w1.disconnect() }
})
