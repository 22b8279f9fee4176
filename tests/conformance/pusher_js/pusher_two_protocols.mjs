// One application, two protocols (issue 17 item 3): Pusher channel C of app K is topic app:K:C.
import test from "node:test"
import {createHmac} from "node:crypto"
import {Socket, Presence} from "phoenix"
import {assert, client, subscribed, trigger, fixture, waitFor, WebSocket} from "./helpers.mjs"

const app = () => fixture.apps.main
const b64url = (value) => Buffer.from(value).toString("base64url")

function endUserToken(sub, channels, userInfo){
  const header = b64url(JSON.stringify({alg: "HS256", typ: "JWT", kid: app().key}))
  const claims = b64url(JSON.stringify({sub, channels, user_info: userInfo, exp: Math.floor(Date.now() / 1000) + 600}))
  const signature = createHmac("sha256", app().secret).update(`${header}.${claims}`).digest("base64url")
  return `${header}.${claims}.${signature}`
}

function phoenix(sub, channels, userInfo){
  const socket = new Socket(`ws://${fixture.host}:${fixture.port}/socket`, {transport: WebSocket, params: {token: endUserToken(sub, channels, userInfo)}})
  socket.connect()
  return socket
}

const joined = (channel) => new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject))

test("a phoenix.js client on app:K:C and a pusher-js client on C receive the same trigger", async () => {
  const socket = phoenix("phx-1", ["scores"])
  const pusher = client()
  try{
    const channel = socket.channel(`app:${app().key}:scores`)
    const phx = []
    channel.on("goal", (p) => phx.push(p))
    await joined(channel)
    const psh = []
    const {channel: pc} = await subscribed(pusher, "scores")
    pc.bind("goal", (d) => psh.push(d))
    await trigger(app(), "goal", {channel: "scores", data: JSON.stringify({team: "red", n: 1})})
    await waitFor(() => phx.length === 1 && psh.length === 1, {what: "both clients"})
    assert.deepEqual(phx[0], {team: "red", n: 1})
    assert.deepEqual(psh[0], {team: "red", n: 1})
  }finally{ socket.disconnect(); pusher.disconnect() }
})

test("presence is one view: a phoenix.js end user is a Pusher member, and the reverse", async () => {
  const pusher = client(app(), {user: {id: "pusher-user", name: "P"}})
  const socket = phoenix("phx-user", ["presence-mixed"], {name: "Phx"})
  try{
    const {channel: pc} = await subscribed(pusher, "presence-mixed")
    const added = [], removed = []
    pc.bind("pusher:member_added", (m) => added.push(m))
    pc.bind("pusher:member_removed", (m) => removed.push(m))
    const channel = socket.channel(`app:${app().key}:presence-mixed`)
    const presence = new Presence(channel)
    await joined(channel)
    await waitFor(() => presence.list().length === 2, {what: "phoenix presence with both"})
    assert.deepEqual(presence.list((id) => id).sort(), ["phx-user", "pusher-user"])
    await waitFor(() => added.length === 1, {what: "member_added for the phoenix user"})
    assert.deepEqual(added[0], {id: "phx-user", info: {name: "Phx"}})
    socket.disconnect()
    await waitFor(() => removed.length === 1, {what: "member_removed"})
    assert.equal(pc.members.count, 1)
  }finally{ socket.disconnect(); pusher.disconnect() }
})
