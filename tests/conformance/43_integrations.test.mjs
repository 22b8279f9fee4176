// Integrations (DESIGN §4.2, docs/integrations.md) with the official phoenix.js client: the seed's
// ExPusherLite flow end to end. An API token is exchanged form-encoded at POST /api/session for a
// JWT; with it an organization and an application are made and listed in the seed's shape
// ({"data": [{name, id, archived_at, app_secret, app_key}]}); the application's "backend" (this
// file) signs its end users' tokens with the app secret (HS256, kid = app key); phoenix.js sockets
// holding them join `app:{key}` and their own `app:{key}:user:{id}`; a trigger with query
// parameters reaches both, and `&uid=U&direct=true` reaches only U.

import {test} from "node:test"
import {createHmac, randomUUID} from "node:crypto"
import {
  assert, fixture, skip, openSocket, closeSocket, join, collect, waitFor
} from "./helpers.mjs"

const b64url = (value) => Buffer.from(value).toString("base64url")

/** What an integrating backend does for each of its users (any JWT library does the same). */
function endUserToken(appKey, appSecret, sub, ttlSeconds = 600){
  const header = b64url(JSON.stringify({alg: "HS256", typ: "JWT", kid: appKey}))
  const claims = b64url(JSON.stringify({sub, exp: Math.floor(Date.now() / 1000) + ttlSeconds}))
  const signature = createHmac("sha256", appSecret).update(`${header}.${claims}`).digest("base64url")
  return `${header}.${claims}.${signature}`
}

async function http(method, path, {bearer, form, json} = {}){
  const headers = {}
  if(bearer){ headers.authorization = `Bearer ${bearer}` }
  let body
  if(form){ headers["content-type"] = "application/x-www-form-urlencoded"; body = new URLSearchParams(form).toString() }
  if(json){ headers["content-type"] = "application/json"; body = JSON.stringify(json) }
  const response = await fetch(`${fixture.httpBase}${path}`, {method, headers, body})
  const text = await response.text()
  return {status: response.status, body: text ? JSON.parse(text) : null}
}

test("integrations: the seed's flow, API token -> /api/session -> applications -> trigger -> phoenix.js", {skip}, async () => {
  const owner = fixture.integrations_user
  assert.ok(owner, "fixture.integrations_user is missing")
  const apiToken = await http("POST", "/api/tokens", {bearer: owner.token, json: {name: "backend"}})
  assert.equal(apiToken.status, 201)
  // The seed: curl -X POST --data "token=..." http://.../api/session
  const session = await http("POST", "/api/session", {form: {token: apiToken.body.token}})
  assert.equal(session.status, 200)
  const jwt = session.body.jwt
  const slug = `acme-${randomUUID().slice(0, 8)}`
  assert.equal((await http("POST", "/api/organizations", {bearer: jwt, json: {name: "Acme Inc", slug}})).status, 201)
  const made = await http("POST", `/api/organizations/${slug}/applications`, {bearer: jwt, json: {name: "Test App"}})
  assert.equal(made.status, 201)
  // The seed: curl -H "Authorization: Bearer <jwt>" .../api/organizations/acme-inc/applications
  const listed = await http("GET", `/api/organizations/${slug}/applications`, {bearer: jwt})
  assert.equal(listed.status, 200)
  const [app] = listed.body.data
  assert.deepEqual(
    {name: app.name, id: app.id, archived_at: app.archived_at, app_secret: app.app_secret, app_key: app.app_key},
    {name: "Test App", id: made.body.id, archived_at: null, app_secret: made.body.app_secret, app_key: made.body.app_key}
  )
  assert.ok(Number.isInteger(app.id))

  const akita = openSocket(null, {token: endUserToken(app.app_key, app.app_secret, "akitaonrails")})
  const other = openSocket(null, {token: endUserToken(app.app_key, app.app_secret, "someone")})
  try {
    const broadcastTopic = `app:${app.app_key}`
    const akitaAll = akita.socket.channel(broadcastTopic)
    const akitaOwn = akita.socket.channel(`${broadcastTopic}:user:akitaonrails`)
    const otherAll = other.socket.channel(broadcastTopic)
    const otherOwn = other.socket.channel(`${broadcastTopic}:user:someone`)
    const seen = {
      akitaAll: collect(akitaAll, "new_message"), akitaOwn: collect(akitaOwn, "new_message"),
      otherAll: collect(otherAll, "new_message"), otherOwn: collect(otherOwn, "new_message"),
    }
    const otherDone = collect(otherAll, "done")
    for(const channel of [akitaAll, akitaOwn, otherAll, otherOwn]){
      assert.equal((await join(channel)).status, "ok", channel.topic)
    }
    // Another end user's topic stays closed.
    const peek = other.socket.channel(`${broadcastTopic}:user:akitaonrails`)
    assert.deepEqual(await join(peek), {status: "error", response: {reason: "unauthorized"}})

    // The seed: curl -X POST -H "Authorization: Bearer <jwt>" .../event/new_message?name=John&message=Hello
    const events = `/api/organizations/${slug}/applications/${app.app_key}/event`
    const broadcast = await http("POST", `${events}/new_message?name=John&message=Hello`, {bearer: jwt})
    assert.equal(broadcast.status, 202)
    await waitFor(() => seen.akitaAll.length && seen.otherAll.length, {what: "the broadcast"})
    assert.deepEqual(seen.akitaAll, [{name: "John", message: "Hello"}])
    assert.deepEqual(seen.otherAll, [{name: "John", message: "Hello"}])

    // The seed: ...&uid=akitaonrails&direct=true reaches akitaonrails only.
    const direct = await http("POST", `${events}/new_message?name=John&message=HelloWorld&uid=akitaonrails&direct=true`, {bearer: jwt})
    assert.equal(direct.status, 202)
    await waitFor(() => seen.akitaOwn.length, {what: "the direct event"})
    assert.deepEqual(seen.akitaOwn, [{name: "John", message: "HelloWorld"}])
    // Published after the direct event: once the other socket has it, the direct one would be in.
    assert.equal((await http("POST", `${events}/done?n=1`, {bearer: jwt})).status, 202)
    await waitFor(() => otherDone.length, {what: "the event after the direct one"})
    assert.deepEqual(seen.otherOwn, [])
    assert.equal(seen.otherAll.length, 1)
    assert.equal(seen.akitaAll.length, 1)
  } finally {
    await Promise.all([akita, other].map(closeSocket))
  }
})
