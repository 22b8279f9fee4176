// Helpers for the pusher-js 8 suite (test_pusher_js.py writes the fixture): Pusher clients
// pointed at Parley as docs/pusher.md says, an application "backend" that signs subscriptions
// and sign-ins with the app secret (what an app's auth endpoint does), signed triggers, a raw
// WebSocket for frame-level checks, and waiting helpers.

import {readFileSync} from "node:fs"
import {createHmac, createHash} from "node:crypto"
import assert from "node:assert/strict"
import Pusher from "pusher-js"
import WebSocket from "ws"

export {Pusher, WebSocket, assert}

export const fixture = JSON.parse(readFileSync(process.env.PARLEY_PUSHER_FIXTURE, "utf8"))

export const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

export async function waitFor(predicate, {timeout = 5000, what = "condition"} = {}){
  const deadline = Date.now() + timeout
  for(;;){
    const value = predicate()
    if(value){ return value }
    if(Date.now() > deadline){ throw new Error(`timed out after ${timeout} ms waiting for ${what}`) }
    await sleep(10)
  }
}

export const sign = (secret, text) => createHmac("sha256", secret).update(text).digest("hex")

/** A pusher-js client for `app`, as docs/pusher.md configures it; `user` signs in with that
 *  user_data object; `tamper(auth)` lets a test break the signature. */
export function client(app = fixture.apps.main, {user = null, tamper = (a) => a, channelData = null} = {}){
  const pusher = new Pusher(app.key, {
    cluster: "parley",
    wsHost: fixture.host,
    wsPort: fixture.port,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    channelAuthorization: {
      customHandler: ({socketId, channelName}, callback) => {
        const auth = {}
        let text = `${socketId}:${channelName}`
        if(channelName.startsWith("presence-")){
          auth.channel_data = channelData || JSON.stringify({user_id: user ? user.id : "anon", user_info: {name: user ? user.name : "anon"}})
          text += `:${auth.channel_data}`
        }
        auth.auth = tamper(`${app.key}:${sign(app.secret, text)}`)
        callback(null, auth)
      },
    },
    userAuthentication: {
      customHandler: ({socketId}, callback) => {
        const user_data = JSON.stringify(user)
        callback(null, {auth: tamper(`${app.key}:${sign(app.secret, `${socketId}::user::${user_data}`)}`), user_data})
      },
    },
  })
  return pusher
}

export function connected(pusher){
  return new Promise((resolve, reject) => {
    if(pusher.connection.state === "connected"){ resolve(pusher.connection.socket_id); return }
    pusher.connection.bind("connected", () => resolve(pusher.connection.socket_id))
    pusher.connection.bind("failed", () => reject(new Error("connection failed")))
  })
}

/** Subscribe and wait for pusher:subscription_succeeded (resolves its data) or _error (rejects). */
export function subscribed(pusher, name){
  const channel = pusher.subscribe(name)
  return new Promise((resolve, reject) => {
    channel.bind("pusher:subscription_succeeded", (data) => resolve({channel, data}))
    channel.bind("pusher:subscription_error", (error) => reject(Object.assign(new Error("subscription_error"), {error})))
  })
}

/** A Pusher-signed trigger on the ExPusherLite endpoint (the one trigger path). */
export async function trigger(app, event, body, query = {}){
  const path = `/api/organizations/${fixture.slug}/applications/${app.key}/event/${event}`
  const raw = JSON.stringify(body)
  const params = {...query, auth_key: app.key, auth_timestamp: String(Math.floor(Date.now() / 1000)), auth_version: "1.0", body_md5: createHash("md5").update(raw).digest("hex")}
  const sorted = Object.keys(params).sort().map(k => `${k}=${params[k]}`).join("&")
  const signature = sign(app.secret, `POST\n${path}\n${sorted}`)
  const response = await fetch(`${fixture.http_base}${path}?${new URLSearchParams({...params, auth_signature: signature})}`, {method: "POST", headers: {"content-type": "application/json"}, body: raw})
  assert.equal(response.status, 202, await response.text())
}

/** A raw WebSocket to /app/{key}: its frames (parsed) and close. */
export function raw(path){
  const ws = new WebSocket(`ws://${fixture.host}:${fixture.port}${path}`)
  const frames = []
  const closed = new Promise(resolve => ws.on("close", (code, reason) => resolve({code, reason: String(reason)})))
  ws.on("message", (data) => frames.push(JSON.parse(String(data))))
  const opened = new Promise((resolve, reject) => { ws.on("open", resolve); ws.on("error", reject) })
  return {ws, frames, closed, opened, send: (obj) => ws.send(typeof obj === "string" ? obj : JSON.stringify(obj))}
}

export const established = (conn) => waitFor(() => conn.frames.find(f => f.event === "pusher:connection_established"), {what: "connection_established"})
export const socketIdOf = (frame) => JSON.parse(frame.data).socket_id
