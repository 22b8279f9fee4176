// Shared helpers for the conformance suite: fixture loading, phoenix.js sockets over `ws` (or
// over long polling), promise wrappers for joins/pushes, and a raw client for frame-level checks
// (a WebSocket, or GETs and POSTs on /socket/longpoll). See README.md for the fixture format and
// the server behaviours these tests assume.

import {readFileSync} from "node:fs"
import assert from "node:assert/strict"
import {Socket, Presence, LongPoll} from "phoenix"
import WebSocket from "ws"

export {Socket, Presence, LongPoll, WebSocket, assert}

function loadFixture(){
  const path = process.env.PARLEY_CONFORMANCE_FIXTURE
  if(!path){ return null }
  const data = JSON.parse(readFileSync(path, "utf8"))
  const url = (process.env.PARLEY_URL || data.url || "").replace(/\/+$/, "")
  if(!url){ return null }
  const origin = new URL(url.replace(/^ws/, "http")).origin
  const httpBase = (data.http_base || origin).replace(/\/+$/, "")
  return {...data, url, httpBase}
}

/** The parsed fixture (see README.md), or null when the environment does not name one. */
export const fixture = loadFixture()

/** Pass as `{skip}` to every test: the suite is skipped, not failed, without a server. */
export const skip = fixture ? false : "PARLEY_URL / PARLEY_CONFORMANCE_FIXTURE not set"

/** `fixture.transport` "longpoll": phoenix.js and the raw client use long polling (§8). */
export const longPoll = Boolean(fixture && fixture.transport === "longpoll")

/** `{skip}` for a test that only means something over a WebSocket; `reason` says why. */
export const webSocketOnly = (reason) => skip || (longPoll ? `long polling: ${reason}` : false)

/** users[0..3] play fixed roles, see README.md. */
export const user = (index) => {
  const found = fixture.users[index]
  assert.ok(found, `fixture.users[${index}] is missing (the suite needs at least 4 users)`)
  return found
}
export const alice = () => user(0)
export const bob = () => user(1)
export const carol = () => user(2)
export const dave = () => user(3)
export const admin = () => fixture.admin || user(0)
export const conversationTopic = () => `conversation:${fixture.conversation_id}`

export const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

/** Poll `predicate` until it returns a truthy value (returned), or fail after `timeout` ms. */
export async function waitFor(predicate, {timeout = 5000, interval = 10, what = "condition"} = {}){
  const deadline = Date.now() + timeout
  for(;;){
    const value = predicate()
    if(value){ return value }
    if(Date.now() > deadline){ throw new Error(`timed out after ${timeout} ms waiting for ${what}`) }
    await sleep(interval)
  }
}

/** V1 object frames for phoenix.js (which always encodes V2 unless told otherwise). */
export const v1Codec = (rawLog) => ({
  vsn: "1.0.0",
  encode: (msg, callback) => callback(JSON.stringify({
    topic: msg.topic, event: msg.event, payload: msg.payload, ref: msg.ref, join_ref: msg.join_ref
  })),
  decode: (raw, callback) => {
    if(rawLog){ rawLog.push(raw) }
    const msg = JSON.parse(raw)
    callback({join_ref: msg.join_ref ?? null, ref: msg.ref, topic: msg.topic, event: msg.event, payload: msg.payload})
  }
})

/**
 * A phoenix.js Socket for `who` (token in the `token` param unless `token: null`), connected.
 * Records opens, closes (code/reason), errors and every decoded frame on the returned object.
 * Back-offs are shortened so reconnects and rejoins happen quickly.
 */
export function openSocket(who, {token = who && who.token, params = {}, ...opts} = {}){
  const allParams = token == null ? {...params} : {...params, token}
  const socket = new Socket(fixture.url, {
    transport: longPoll ? LongPoll : WebSocket,
    params: allParams,
    timeout: 5000,
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 100,
    ...opts
  })
  const state = {socket, opens: 0, closes: [], errors: [], frames: []}
  socket.onOpen(() => { state.opens++ })
  socket.onClose(event => { state.closes.push({code: event.code, reason: event.reason}) })
  socket.onError(error => { state.errors.push(error) })
  socket.onMessage(msg => { state.frames.push(msg) })
  socket.connect()
  return state
}

/** Disconnect and wait until the transport is really closed (so the test process can exit). */
export async function closeSocket(state){
  await new Promise(resolve => state.socket.disconnect(resolve))
}

/** Resolve with {status, response} of the join reply (first one), reject on timeout. */
export function join(channel, timeout = 5000){
  return new Promise((resolve, reject) => {
    channel.join(timeout)
      .receive("ok", response => resolve({status: "ok", response}))
      .receive("error", response => resolve({status: "error", response}))
      .receive("timeout", () => reject(new Error(`join of ${channel.topic} timed out`)))
  })
}

/** Resolve with {status, response} of a push's reply, reject on timeout. */
export function push(channel, event, payload, timeout = 5000){
  return new Promise((resolve, reject) => {
    channel.push(event, payload, timeout)
      .receive("ok", response => resolve({status: "ok", response}))
      .receive("error", response => resolve({status: "error", response}))
      .receive("timeout", () => reject(new Error(`push ${event} on ${channel.topic} timed out`)))
  })
}

/** Collect the payloads of `event` on `channel` into an array. */
export function collect(channel, event){
  const seen = []
  channel.on(event, payload => seen.push(payload))
  return seen
}

/** The upgrade URL for raw clients: `{url}/websocket?token=..&vsn=..` (vsn omitted if null). */
export function socketUrl({token, vsn = "2.0.0", query = {}} = {}){
  const params = new URLSearchParams(query)
  if(token != null){ params.set("token", token) }
  if(vsn != null){ params.set("vsn", vsn) }
  const qs = params.toString()
  return `${fixture.url}/websocket${qs ? "?" + qs : ""}`
}

/** The long-poll URL for raw clients: `{url}/longpoll?token=..&vsn=..[&token=<session token>]`. */
export function longPollUrl(urlOpts = {}, sessionToken = null){
  const url = socketUrl(urlOpts).replace(/^ws/, "http").replace("/websocket", "/longpoll")
  if(sessionToken == null){ return url }
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(sessionToken)}`
}

/** Long-poll request headers: `Origin`, and phoenix.js's `authToken` decoded from its offer. */
function longPollHeaders({origin, protocols} = {}){
  const headers = {accept: "application/json"}
  if(origin){ headers.origin = origin }
  const offer = (protocols || []).find(p => p.startsWith("base64url.bearer.phx."))
  if(offer){
    headers["x-phoenix-authtoken"] = Buffer.from(offer.slice("base64url.bearer.phx.".length), "base64").toString("latin1")
  }
  return headers
}

/**
 * Attempt an upgrade; resolves with the HTTP status: 101 when the WebSocket opened (then closed
 * again at once), otherwise the refusal status (403, 400, ...). Over long polling: the status of
 * the session-opening GET, with 410 ("session created", §8.2) reported as 101.
 */
export async function upgradeStatus({origin, protocols, ...urlOpts} = {}){
  if(longPoll){
    const response = await fetch(longPollUrl(urlOpts), {headers: longPollHeaders({origin, protocols})})
    assert.equal(response.status, 200, "long-poll protocol answers are HTTP 200")
    const {status} = await response.json()
    return status === 410 ? 101 : status
  }
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(socketUrl(urlOpts), protocols, origin ? {origin} : {})
    ws.on("upgrade", response => { resolve(response.statusCode) })
    ws.on("open", () => ws.close(1000))
    ws.on("unexpected-response", (request, response) => {
      resolve(response.statusCode)
      response.resume()
      request.destroy()
    })
    ws.on("error", error => { if(!/Unexpected server response/.test(error.message)){ reject(error) } })
  })
}

/** A raw protocol client: sends exact frames, records every received frame (parsed JSON). */
export class RawClient {
  static open({token, vsn = "2.0.0", query, origin, protocols} = {}){
    if(longPoll){ return LongPollClient.open({token, vsn, query, origin, protocols}) }
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(socketUrl({token, vsn, query}), protocols, origin ? {origin} : {})
      const client = new RawClient(ws, vsn)
      ws.once("open", () => resolve(client))
      ws.once("error", reject)
    })
  }

  constructor(ws, vsn){
    this.ws = ws
    this.vsn = vsn
    this.refCounter = 0
    this.frames = []      // unconsumed parsed frames
    this.rawFrames = []   // every frame as received (string or Buffer)
    this.closeEvent = null
    this.closed = new Promise(resolve => {
      ws.on("close", (code, reason) => {
        this.closeEvent = {code, reason: reason.toString()}
        resolve(this.closeEvent)
      })
    })
    ws.on("error", () => {})
    ws.on("message", (data, isBinary) => {
      this.rawFrames.push(isBinary ? data : data.toString())
      if(!isBinary){ this.frames.push(JSON.parse(data.toString())) }
    })
  }

  ref(){ return String(++this.refCounter) }

  send(frame){ this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)) }

  /** Consume and return the first frame satisfying `predicate`, waiting up to `timeout` ms. */
  async next(predicate, {timeout = 5000, what = "frame"} = {}){
    let found
    await waitFor(() => {
      const index = this.frames.findIndex(predicate)
      if(index < 0){ return false }
      found = this.frames.splice(index, 1)[0]
      return true
    }, {timeout, what})
    return found
  }

  /** V2: `[join_ref, ref, topic, event, payload]` then wait for the reply with that ref. */
  async request(joinRef, topic, event, payload = {}, ref = this.ref()){
    this.send([joinRef, ref, topic, event, payload])
    return this.next(f => f[3] === "phx_reply" && f[1] === ref, {what: `reply to ${event} ${ref}`})
  }

  /** V2 join with join_ref = ref; returns [reply, joinRef]. */
  async join(topic, payload = {}){
    const ref = this.ref()
    const reply = await this.request(ref, topic, "phx_join", payload, ref)
    return [reply, ref]
  }

  close(code = 1000){ this.ws.close(code); return this.closed }
}

/**
 * RawClient's interface over long polling (§8): one GET opens the session, a loop of GETs polls
 * (each message a frame as a WebSocket would carry it), each `send` is a POST, one after the
 * other (V2: ndjson; V1: the object as the whole body). A 410 while polling ends it like a close
 * (phoenix.js's code 3410). `close` stops polling; the server ends the session after its timeout.
 */
class LongPollClient extends RawClient {
  static async open({token, vsn = "2.0.0", query, origin, protocols} = {}){
    const urlOpts = {token, vsn, query}
    const headers = longPollHeaders({origin, protocols})
    const response = await fetch(longPollUrl(urlOpts), {headers})
    const body = await response.json()
    if(body.status !== 410){ throw new Error(`long-poll open refused: ${JSON.stringify(body)}`) }
    return new LongPollClient(urlOpts, headers, body.token, vsn)
  }

  constructor(urlOpts, headers, sessionToken, vsn){
    let onClose
    super({on(event, handler){ if(event === "close"){ onClose = handler } }}, vsn)
    this.urlOpts = urlOpts
    this.headers = headers
    this.sessionToken = sessionToken
    this.sending = Promise.resolve()
    this.controller = new AbortController()
    this.polling = this.poll(onClose)
  }

  async poll(onClose){
    try {
      for(;;){
        const response = await fetch(longPollUrl(this.urlOpts, this.sessionToken), {headers: this.headers, signal: this.controller.signal})
        const body = await response.json()
        if(body.status === 410){ onClose(3410, Buffer.from("session_gone")); return }
        assert.ok(body.status === 200 || body.status === 204, `poll answered ${JSON.stringify(body)}`)
        this.sessionToken = body.token
        for(const message of body.messages){
          this.rawFrames.push(message)
          this.frames.push(JSON.parse(message))
        }
      }
    } catch(error){
      if(error.name !== "AbortError"){ throw error }
    }
  }

  send(frame){
    const text = typeof frame === "string" ? frame : JSON.stringify(frame)
    const type = this.vsn === "2.0.0" ? "application/x-ndjson" : "application/json"
    this.sending = this.sending.then(async () => {
      const response = await fetch(longPollUrl(this.urlOpts, this.sessionToken), {
        method: "POST", body: text, headers: {...this.headers, "content-type": type}
      })
      const body = await response.json()
      assert.equal(body.status, 200, `POST answered ${JSON.stringify(body)}`)
    })
  }

  async close(){
    await this.sending
    this.controller.abort()
    await this.polling
    return this.closeEvent
  }
}

/** POST to the server's HTTP side (debug endpoints) with the operator token. */
export function operatorPost(path){
  return fetch(`${fixture.httpBase}${path}`, {
    method: "POST",
    headers: {authorization: `Bearer ${fixture.operator_token}`}
  })
}
