// Auth coverage derived from the app itself: every route Fastify registered is read back from
// `printRoutes()` (cross-checked with `hasRoute` and the OpenAPI document), so a route added
// later is tested without anyone listing it here. Each one under /sessions must answer 401 to a
// missing or wrong token, for every method it has (HEAD included); every other route must be one
// of the contract's open routes and must never answer 401.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { FastifyInstance, HTTPMethods, LightMyRequestResponse } from 'fastify'
import { buildApp } from '../src/app.js'
import { tokenMatches } from '../src/auth.js'
import { tempDirs, testConfig, type TempDirs } from './support/config.js'
import { ISO_MS, sessionBody } from './support/requests.js'

const SECRET = 'auth-routes-secret-3e8d1f0b6c'
const ID = '550e8400-e29b-41d4-a716-446655440000'
/** The contract's open routes: probes, docs, the OpenAPI document and metrics. */
const OPEN = ['/healthz', '/health', '/ready', '/docs', '/openapi.json', '/metrics']
const isOpen = (url: string) => OPEN.some(open => url === open || url.startsWith(`${open}/`) || (open === '/docs' && url.startsWith('/docs')))
const isGuarded = (url: string) => url.startsWith('/sessions')

const WRONG_AUTH = [
  undefined,
  '',
  'Bearer',
  'Bearer ',
  'Bearer wrong',
  `Bearer ${SECRET}x`,
  `Bearer x${SECRET}`,
  `Bearer ${SECRET.slice(0, -1)}`,
  `Bearer ${SECRET.toUpperCase()}`,
  `Bearer ${SECRET} ${SECRET}`,
  SECRET,
  `Basic ${Buffer.from(`user:${SECRET}`).toString('base64')}`,
  `Token ${SECRET}`,
]

interface Route { method: HTTPMethods, url: string }

/**
 * Every (method, path) the router holds, read from `printRoutes({ commonPrefix: false })`: a tree
 * whose lines are `<indent>├── <segment> (<METHODS>)`, 4 characters of indent per level, a
 * route's path being the concatenation of its ancestors' segments. The printer drops the static
 * prefix a wildcard shares with its siblings (`/docs/static/*` shows as `*` beside
 * `/static/index.html` under `/docs`), so a wildcard's path is chosen among candidates by `hasRoute`.
 */
function registeredRoutes (app: FastifyInstance): Route[] {
  const entries: Array<{ parent: string, segment: string, methods: HTTPMethods[] }> = []
  const stack: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:│ {3}| {4})*)(?:├── |└── )(.+?)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (!match) continue
    stack.length = match[1].length / 4
    entries.push({ parent: stack.join(''), segment: match[2], methods: (match[3]?.split(', ') ?? []) as HTTPMethods[] })
    stack.push(match[2])
  }
  return entries.flatMap(({ parent, segment, methods }) => {
    const candidates = [parent + segment]
    if (segment.startsWith('*')) {
      candidates.push(`${parent}/*`)
      for (const sibling of entries.filter(e => e.parent === parent)) {
        const full = parent + sibling.segment
        candidates.push(`${full.slice(0, full.lastIndexOf('/') + 1)}*`)
      }
    }
    const url = candidates.find(c => methods.every(method => app.hasRoute({ method, url: c }))) ?? candidates[0]
    return methods.map(method => ({ method, url }))
  })
}

/** A concrete URL for a route pattern: valid ids for params, something for wildcards. */
const concrete = (url: string, id = ID) => url.replace(/:sessionId\b/g, id).replace(/:\w+/g, 'x').replace(/\*/g, 'x')

function assertUnauthorized (res: LightMyRequestResponse, method: HTTPMethods, label: string) {
  assert.equal(res.statusCode, 401, `${label}: ${res.statusCode} ${res.body.slice(0, 200)}`)
  assert.equal(res.headers['www-authenticate'], 'Bearer', label)
  assert.match(String(res.headers['content-type']), /^application\/json/, label)
  assert.ok(!res.body.includes(SECRET), label)
  if (method === 'HEAD') return
  const body = res.json()
  assert.deepEqual(Object.keys(body).sort(), ['error', 'timestamp'], label)
  assert.ok(typeof body.error === 'string' && body.error.length > 0, label)
  assert.match(body.timestamp, ISO_MS, label)
}

describe('every /sessions route requires the bearer token; open routes never ask for it', () => {
  let dirs: TempDirs
  let app: FastifyInstance
  let routes: Route[]

  before(async () => {
    dirs = tempDirs()
    app = await buildApp(testConfig(dirs, { OPENCODE_SHARED_SECRET: SECRET, OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
    await app.ready()
    routes = registeredRoutes(app)
  })

  after(async () => {
    await app.close()
    dirs.cleanup()
  })

  test('the route list read from the router is complete and real', async () => {
    for (const route of routes) assert.ok(app.hasRoute(route), `parsed a route the router does not have: ${route.method} ${route.url}`)
    const listed = new Set(routes.map(r => `${r.method} ${r.url}`))
    for (const known of [
      'POST /sessions', 'GET /sessions/:sessionId/status', 'HEAD /sessions/:sessionId/status', 'GET /sessions/:sessionId/stream',
      'HEAD /sessions/:sessionId/stream', 'DELETE /sessions/:sessionId', 'GET /healthz', 'GET /health', 'GET /ready', 'GET /openapi.json', 'GET /docs',
    ]) assert.ok(listed.has(known), `${known} missing from ${[...listed].join(', ')}`)
    // Every operation of the OpenAPI document is a registered route, and vice versa for /sessions.
    const doc = (await app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, { security?: unknown[] }>> }
    const documented = new Set<string>()
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const key = `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`
        documented.add(key)
        assert.ok(listed.has(key), `documented but not registered: ${key}`)
        if (isGuarded(path)) assert.deepEqual(op.security, [{ bearerAuth: [] }], `${key} documents no bearer auth`)
      }
    }
    for (const route of routes.filter(r => isGuarded(r.url) && r.method !== 'HEAD')) {
      assert.ok(documented.has(`${route.method} ${route.url}`), `undocumented session route: ${route.method} ${route.url}`)
    }
  })

  test('every route is either a guarded /sessions route or one of the contract\'s open routes', () => {
    const unclassified = routes.filter(r => !isGuarded(r.url) && !isOpen(r.url))
    assert.deepEqual(unclassified, [], 'a new route must live under /sessions (guarded) or be added to the open list on purpose')
  })

  test('each /sessions route and method answers 401 to a missing or wrong token, before validating anything', async () => {
    const guarded = routes.filter(r => isGuarded(r.url))
    assert.ok(guarded.length >= 6, `only ${guarded.length} guarded routes found`)
    for (const { method, url } of guarded) {
      const attempts = [
        { url: concrete(url), payload: method === 'POST' ? sessionBody() : undefined },
        // Invalid params and bodies: auth comes first, so these are 401 too, not 400/413/415.
        { url: concrete(url, 'not-a-uuid'), payload: undefined },
        { url: concrete(url), payload: '{bad json', type: 'application/json' },
        { url: concrete(url), payload: 'hello', type: 'text/plain' },
        { url: `${concrete(url)}?last_event_id=-1`, payload: undefined },
      ]
      if (method === 'POST') attempts.push({ url: concrete(url), payload: 'x'.repeat(2 * 1024 * 1024), type: 'application/json' })
      for (const attempt of attempts) {
        for (const authorization of WRONG_AUTH) {
          const headers: Record<string, string> = {}
          if (authorization !== undefined) headers.authorization = authorization
          if ('type' in attempt && attempt.type) headers['content-type'] = attempt.type
          const hasBody = attempt.payload !== undefined && method !== 'GET' && method !== 'HEAD'
          const res = await app.inject({ method, url: attempt.url, headers, ...(hasBody ? { payload: attempt.payload } : {}) })
          assertUnauthorized(res, method, `${method} ${attempt.url.slice(0, 80)} with ${JSON.stringify(authorization)}`)
        }
      }
      // The right token gets past auth (so the 401s above were auth, not a missing route).
      const res = await app.inject({
        method,
        url: concrete(url),
        headers: { authorization: `Bearer ${SECRET}` },
        ...(method === 'POST' ? { payload: sessionBody() } : {}),
      })
      assert.notEqual(res.statusCode, 401, `${method} ${url} with the right token`)
    }
  })

  test('open routes never answer 401, whatever Authorization says', async () => {
    const open = routes.filter(r => !isGuarded(r.url))
    const targets = [...open.map(r => ({ method: r.method, url: concrete(r.url) })), ...OPEN.map(url => ({ method: 'GET' as HTTPMethods, url }))]
    for (const { method, url } of targets) {
      for (const authorization of [...WRONG_AUTH, `Bearer ${SECRET}`]) {
        const res = await app.inject({ method, url, headers: authorization === undefined ? {} : { authorization } })
        assert.notEqual(res.statusCode, 401, `${method} ${url} with ${JSON.stringify(authorization)}`)
        assert.equal(res.headers['www-authenticate'], undefined, `${method} ${url}`)
      }
    }
  })
})

describe('tokenMatches', () => {
  test('equal tokens match', () => {
    for (const token of ['a', SECRET, 'é', '😀 token with spaces', 'x'.repeat(10_000), '\u0000']) assert.equal(tokenMatches(token, token), true, token)
  })

  test('different tokens of the same length do not match, wherever they differ', () => {
    const secret = 'abcdefghijklmnop'
    for (let i = 0; i < secret.length; i++) {
      const other = `${secret.slice(0, i)}${secret[i] === 'z' ? 'y' : 'z'}${secret.slice(i + 1)}`
      assert.equal(tokenMatches(other, secret), false, other)
    }
    assert.equal(tokenMatches('ABCDEFGHIJKLMNOP', secret), false)
    assert.equal(tokenMatches('e\u0301', '\u00e9x'), false)
  })

  test('tokens of different lengths do not match (and nothing throws)', () => {
    const secret = 'abcdefghijklmnop'
    for (const other of [secret.slice(0, -1), `${secret}q`, secret.slice(1), `a${secret}`, secret.repeat(2), 'a', 'x'.repeat(100_000)]) {
      assert.equal(tokenMatches(other, secret), false, other)
      assert.equal(tokenMatches(secret, other), false, other)
    }
  })

  test('an empty token never matches a secret, and an empty secret only an empty token', () => {
    // Config refuses an empty secret and bearerToken never yields an empty token; this pins the primitive.
    assert.equal(tokenMatches('', SECRET), false)
    assert.equal(tokenMatches(SECRET, ''), false)
    assert.equal(tokenMatches('', ''), true)
  })

  test('matches exactly when the strings are equal (property)', () => {
    const token = fc.oneof(fc.string({ unit: 'binary', maxLength: 64 }), fc.string({ maxLength: 64 }))
    fc.assert(fc.property(token, token, (a, b) => tokenMatches(a, b) === (a === b)), { seed: 20260119, numRuns: 2000 })
    fc.assert(fc.property(token, (a) => tokenMatches(a, a)), { seed: 20260119, numRuns: 500 })
  })
})
