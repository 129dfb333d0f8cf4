// Property-based fuzzing of the HTTP layer through `app.inject`, with the engine unavailable
// (OPENCODE_BIN points nowhere): whatever arrives, the app never answers 5xx (except the 503 a
// valid create request gets while the engine is down), never crashes, gives every non-2xx the
// contract's error body, names the field of every validation error and never echoes a secret.
// The seed is fixed so CI is reproducible; fast-check prints seed and path on failure, and
// FUZZ_SEED / FUZZ_SCALE (a multiplier of the run counts) replay or widen a run.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Value } from '@sinclair/typebox/value'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { BODY_LIMIT_BYTES, buildApp } from '../src/app.js'
import { CreateSessionBody, TOOL_NAMES } from '../schemas/session.js'
import { tempDirs, testConfig, type TempDirs } from './support/config.js'
import { ISO_MS } from './support/requests.js'

const SEED = Number(process.env.FUZZ_SEED ?? 20260119)
const SCALE = Number(process.env.FUZZ_SCALE ?? 1)
const options = (numRuns: number) => ({ seed: SEED, numRuns: Math.max(1, Math.round(numRuns * SCALE)), includeErrorInReport: true })

const SECRET = 'fuzz-shared-secret-5b1d0c7e9a42'
// Every api_key the fuzzer sends carries this marker, so an echo is found whatever else changed.
const KEY_MARK = 'sk-fuzzmark-'
const AUTH = `Bearer ${SECRET}`
const KNOWN_ID = '550e8400-e29b-41d4-a716-446655440000'
const PROVIDERS = ['openai', 'anthropic', 'google', 'openai-compatible'] as const

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

interface ErrorBody { error: string, details?: Obj, timestamp: string }

interface Check {
  /** Statuses the request may get. */
  allowed: readonly number[]
  /** A 400 must name `details.field` (the request was well-formed JSON, or had no body). */
  fieldRequired?: boolean
  /** Paths `details.field` may name (rendered like the error handler renders them). */
  fields?: Set<string>
  head?: boolean
}

/** The contract's checks, for any response; returns the error body of a non-2xx. */
function assertContract (res: LightMyRequestResponse, check: Check): ErrorBody | undefined {
  const where = `${res.statusCode} ${res.body.slice(0, 400)}`
  assert.ok(check.allowed.includes(res.statusCode), `status not in [${check.allowed.join(', ')}]: ${where}`)
  assert.ok(res.statusCode < 500 || res.statusCode === 503, `5xx: ${where}`)
  const headers = JSON.stringify(res.headers)
  for (const text of [res.body, headers]) {
    assert.ok(!text.includes(SECRET), `the shared secret is echoed: ${where}`)
    assert.ok(!text.includes(KEY_MARK), `an api_key is echoed: ${where}`)
  }
  if (res.statusCode < 400) return undefined
  assert.match(String(res.headers['content-type']), /^application\/json/, where)
  if (res.statusCode === 401) assert.equal(res.headers['www-authenticate'], 'Bearer', where)
  if (check.head) {
    assert.equal(res.body, '', where)
    return undefined
  }
  const body: unknown = JSON.parse(res.body)
  assert.ok(isObj(body), where)
  assert.deepEqual(Object.keys(body).filter(k => !['error', 'details', 'timestamp'].includes(k)), [], where)
  assert.equal(typeof body.error, 'string', where)
  assert.ok((body.error as string).trim().length > 0, where)
  assert.ok(body.details === undefined || isObj(body.details), where)
  assert.match(String(body.timestamp), ISO_MS, where)
  assert.equal(new Date(String(body.timestamp)).toISOString(), body.timestamp, where)
  const error = body as unknown as ErrorBody
  if (res.statusCode === 503) {
    assert.match(error.error, /^Not ready/, where)
    assert.match(String(res.headers['retry-after']), /^\d+$/, where)
  }
  const validation = error.error.startsWith('Invalid request')
  if (res.statusCode === 400 && (validation || check.fieldRequired)) {
    const field = error.details?.field
    assert.equal(typeof field, 'string', `a 400 without details.field: ${where}`)
    assert.ok((field as string).length > 0, where)
    assert.ok(error.error.includes(field as string), where)
    if (check.fields) assert.ok(check.fields.has(field as string), `details.field names no field of the request: ${where}`)
  }
  return error
}

// ---- POST /sessions bodies -------------------------------------------------

const hex = (min: number, max: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${min},${max}}$`))

const goodEndpoint = fc.oneof(
  fc.constantFrom('https://api.openai.com/v1', 'http://localhost:11434/v1', 'http://127.0.0.1:8000/v1', 'http://[::1]:8080', 'https://openrouter.ai/api/v1?x=1', 'HTTPS://EXAMPLE.COM/V1', 'https://example.com/#'),
  fc.webUrl()
)

const validBody = fc.record({
  session_id: fc.oneof(fc.uuid(), fc.uuid().map(u => u.toUpperCase())),
  prompt: fc.string({ unit: 'grapheme', maxLength: 80 }).map(s => `Task: ${s}`),
  model_config: fc.record({
    provider: fc.constantFrom(...PROVIDERS),
    model: fc.stringMatching(/^[\w.:/@-]{1,60}$/),
    api_key: hex(8, 40).map(s => KEY_MARK + s),
    temperature: fc.double({ min: 0, max: 2, noNaN: true }),
    max_tokens: fc.integer({ min: 1, max: 1_000_000 }),
    enabled_tools: fc.shuffledSubarray([...TOOL_NAMES]),
    model_version: fc.option(fc.stringMatching(/^[\w.-]{1,64}$/), { nil: null }),
    api_endpoint: fc.option(goodEndpoint, { nil: null }),
  }, { requiredKeys: ['provider', 'model', 'api_key', 'temperature', 'max_tokens', 'enabled_tools'] }),
  system_prompt: fc.option(fc.string({ unit: 'grapheme', maxLength: 200 }), { nil: null }),
}, { requiredKeys: ['session_id', 'prompt', 'model_config'] }).map(body => {
  const mc = body.model_config as Obj
  if (mc.provider === 'openai-compatible' && (mc.api_endpoint === undefined || mc.api_endpoint === null)) mc.api_endpoint = 'http://localhost:11434/v1'
  return body
})

const badUuid = fc.uuid().chain(u => fc.constantFrom(
  u.replace(/-/g, ''), `{${u}}`, `urn:uuid:${u}`, `${u}\n`, ` ${u}`, u.slice(1), `${u}0`, u.replace(/[0-9a-f]/, 'g'),
  u.replace(/[0-9]/, '\u0663'), u.replace(/-/g, '_'), `${u.slice(0, 8)}-${u.slice(9)}`, `${u}/../x`, ''
))

const badUrl = fc.oneof(
  fc.constantFrom(
    'file:///etc/passwd', 'javascript:alert(1)', 'JavaScript:alert(document.cookie)', 'data:text/plain,hi', 'ftp://example.com/',
    'ws://example.com', 'https://user:pass@example.com/v1', 'https://user@example.com', 'https://:pass@example.com',
    'http://sk-live%40key@example.com', 'http://', 'https://', '//example.com/v1', '/v1', 'example.com', 'https://example.com/#frag',
    'https://exa mple.com', 'http://[::1', 'http://example.com:99999', ' https://example.com', 'https://example.com\n',
    'http://\u0000', 'https://例え.jp/v1', 'http://169.254.169.254/latest', `https://example.com/${'a'.repeat(2100)}`, ''
  ),
  fc.webUrl({ withFragments: true, withQueryParameters: true }),
  fc.webUrl().map(u => u.replace('://', '://admin:hunter2@'))
)

/** An array or object nested `depth` levels deep. */
function nest (depth: number, kind: 'array' | 'object'): unknown {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = kind === 'array' ? [value] : { a: value }
  return value
}

const controlChars = fc.string({ unit: fc.integer({ min: 0, max: 0x1f }).map(c => String.fromCharCode(c)), minLength: 1, maxLength: 20 })

const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null, true, false, 0, -1, 1, 2, 2.0000001, -0.000001, 1e6, 1e6 + 1, 1.5, Number.MAX_SAFE_INTEGER + 2, 1e308, -1e308,
    '', ' ', '\t\n\r ', '\u0000', '\u007f', '\u2028\u2029', '\u00a0', '\ud83d\ude00', '\u202e', '0', 'true', 'null', '[]', '{}',
    'READ', ' read', 'rm', 'OpenAI', 'openai ', 'azure'
  ),
  fc.double(),
  fc.integer(),
  fc.string({ unit: 'binary', maxLength: 50 }),
  fc.string({ unit: 'grapheme', maxLength: 50 }),
  fc.tuple(fc.string({ maxLength: 10 }), controlChars).map(([a, b]) => a + b),
  // Near and over the schema's string limits (4096/2048/200/64/100k/200k); BMP only, so
  // UTF-16 and code-point lengths agree.
  fc.tuple(
    fc.constantFrom(64, 65, 200, 201, 2048, 2049, 4096, 4097, 100_000, 100_001, 199_999, 200_000, 200_001),
    fc.constantFrom('x', 'é', '€', ' ', '\u0000', '\n')
  ).map(([n, c]) => c.repeat(n)),
  badUuid,
  badUrl,
  fc.jsonValue({ maxDepth: 4 }),
  fc.array(fc.constantFrom(...TOOL_NAMES, 'READ', ' read', 'rm', '', 'webfetch '), { maxLength: 16 }),
  fc.tuple(fc.integer({ min: 2, max: 2000 }), fc.constantFrom('array' as const, 'object' as const)).map(([d, k]) => nest(d, k))
)

type Path = Array<string | number>
type Mutation = { op: 'delete', path: Path } | { op: 'set', path: Path, value: unknown } | { op: 'duplicate-tool' }

const TOP = ['session_id', 'prompt', 'model_config', 'system_prompt']
const MODEL_KEYS = ['provider', 'model', 'api_key', 'temperature', 'max_tokens', 'enabled_tools', 'model_version', 'api_endpoint']

const path: fc.Arbitrary<Path> = fc.oneof(
  fc.constantFrom(...TOP.map(k => [k])),
  fc.constantFrom(...MODEL_KEYS.map(k => ['model_config', k])),
  fc.nat(14).map(i => ['model_config', 'enabled_tools', i]),
  // Unknown fields, including typos and prototype keys.
  fc.tuple(
    fc.constantFrom<Path>([], ['model_config']),
    fc.oneof(fc.string({ unit: 'grapheme', maxLength: 20 }), fc.constantFrom('__proto__', 'constructor', 'sytem_prompt', 'temprature', 'apiKey', 'SESSION_ID', 'prompt ', ''))
  ).map(([p, k]) => [...p, k])
)

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 1, arbitrary: path.map(p => ({ op: 'delete' as const, path: p })) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), path, value: junk }) },
  { weight: 1, arbitrary: fc.constant({ op: 'duplicate-tool' as const }) },
  // A key that is still marked (so an echo is caught) but malformed, huge or full of control characters.
  {
    weight: 1,
    arbitrary: fc.oneof(controlChars, fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom('x'.repeat(5000), ' ', '\u007f', '\n'))
      .map(tail => ({ op: 'set' as const, path: ['model_config', 'api_key'], value: KEY_MARK + tail })),
  }
)

/** Applies a mutation in place; one that no longer fits (its parent was replaced) is skipped. */
function mutate (body: Obj, m: Mutation): void {
  if (m.op === 'duplicate-tool') {
    const mc = body.model_config
    if (isObj(mc) && Array.isArray(mc.enabled_tools)) mc.enabled_tools.push(mc.enabled_tools[0] ?? 'read', 'read')
    return
  }
  let parent: unknown = body
  for (const key of m.path.slice(0, -1)) parent = isObj(parent) || Array.isArray(parent) ? (parent as Obj)[key] : undefined
  const key = m.path[m.path.length - 1]
  if (Array.isArray(parent) && typeof key === 'number') {
    if (m.op === 'delete') parent.splice(key, 1)
    else if (key < parent.length) parent[key] = m.value
    else parent.push(m.value)
  } else if (isObj(parent)) {
    if (m.op === 'delete') delete parent[key]
    // defineProperty makes `__proto__` an own (serialized) key instead of setting the prototype.
    else Object.defineProperty(parent, key, { value: m.value, enumerable: true, writable: true, configurable: true })
  }
}

/** Whether the JSON holds a key secure-json-parse refuses (`__proto__`, `constructor.prototype`). */
function poisoned (value: unknown): boolean {
  const queue = [value]
  while (queue.length) {
    const node = queue.pop()
    if (typeof node !== 'object' || node === null) continue
    if (Object.hasOwn(node, '__proto__')) return true
    const ctor = (node as Obj).constructor
    if (Object.hasOwn(node, 'constructor') && isObj(ctor) && Object.hasOwn(ctor, 'prototype')) return true
    queue.push(...Object.values(node))
  }
  return false
}

/** Every path of the body to depth 3, plus the required ones, as the error handler names them. */
function fieldNames (body: unknown): Set<string> {
  const names = new Set(['body', 'session_id', 'prompt', 'model_config', ...MODEL_KEYS.map(k => `model_config.${k}`)])
  const walk = (node: unknown, prefix: string, depth: number) => {
    if (depth === 0 || typeof node !== 'object' || node === null) return
    for (const [key, v] of Object.entries(node)) {
      const k = key === '' ? '""' : key
      const name = Array.isArray(node) ? `${prefix}[${k}]` : prefix ? `${prefix}.${k}` : k
      names.add(name)
      // The handler cannot tell a numeric key from an array index: `model_config.0` reads `model_config[0]`.
      if (/^\d+$/.test(k) && prefix) names.add(`${prefix}[${k}]`)
      walk(v, name, depth - 1)
    }
  }
  walk(body, '', 3)
  return names
}

/** The contract's rules on api_endpoint (beyond the schema): absolute http(s), no credentials. */
function endpointRejected (body: Obj): boolean {
  const mc = body.model_config as Obj
  const endpoint = mc.api_endpoint
  if (endpoint === undefined || endpoint === null) return mc.provider === 'openai-compatible'
  let url: URL
  try {
    url = new URL(String(endpoint))
  } catch {
    return true
  }
  return !['http:', 'https:'].includes(url.protocol) || url.username !== '' || url.password !== ''
}

/** What POST /sessions may answer for a JSON payload while the engine is unavailable. */
function expectFor (payload: string): Check {
  if (Buffer.byteLength(payload) > BODY_LIMIT_BYTES) return { allowed: [413] }
  const parsed: unknown = JSON.parse(payload)
  if (poisoned(parsed)) return { allowed: [400] }
  const fields = fieldNames(parsed)
  if (!Value.Check(CreateSessionBody, parsed)) return { allowed: [400], fieldRequired: true, fields }
  if (endpointRejected(parsed as Obj)) return { allowed: [400], fieldRequired: true, fields: new Set(['model_config.api_endpoint']) }
  // Valid by schema and contract: only the engine (or a stricter endpoint rule) can refuse it.
  return { allowed: [503, 400], fieldRequired: true, fields: new Set(['model_config.api_endpoint']) }
}

// ---- raw requests ----------------------------------------------------------

/** Header values as they can travel on the wire (visible ASCII, space, tab, obs-text). */
const headerValue = (maxLength = 60) => fc.string({
  unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }), fc.constant(9)).map(c => String.fromCharCode(c)),
  maxLength,
})

const contentType = fc.oneof(
  fc.constantFrom(
    undefined, 'application/json', 'application/json; charset=utf-8', 'Application/JSON;charset=UTF-8', 'application/json; charset=latin1',
    'application/json;', 'application/json; charset="utf-8"; foo=bar', 'text/plain', 'text/json', 'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=xyz', '', ' ', 'application/jsonx', 'application/json-patch+json', 'application/vnd.api+json',
    'application/*', '*/*', 'json', ';', 'application/json, text/plain', 'application/octet-stream'
  ),
  headerValue(40)
)

const validJson = validBody.map(b => JSON.stringify(b))

const rawPayload: fc.Arbitrary<string | Buffer> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: fc.constantFrom(...'{}[]",:0123456789.-+eEtruefalsn \\/u'), maxLength: 200 }),
  fc.uint8Array({ maxLength: 300 }).map(a => Buffer.from(a)),
  fc.jsonValue().map(v => JSON.stringify(v) ?? ''),
  // Truncated valid JSON.
  fc.tuple(validJson, fc.nat()).map(([s, n]) => s.slice(0, n % s.length)),
  // One byte of valid JSON replaced.
  fc.tuple(validJson, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([s, n, byte]) => {
    const buf = Buffer.from(s)
    buf[n % buf.length] = byte
    return buf
  }),
  // Invalid UTF-8 inside a string value and inside a key.
  fc.tuple(validJson, fc.uint8Array({ minLength: 1, maxLength: 8 }).map(a => Buffer.from(a.map(b => b | 0x80))), fc.boolean()).map(([s, bad, inKey]) => {
    const [head, tail] = inKey ? s.split('"session_id"') : s.split('Task: ')
    return Buffer.concat([Buffer.from(head + (inKey ? '"session_id' : 'Task: ')), bad, Buffer.from((inKey ? '"' : '') + tail)])
  }),
  // Prototype poisoning at the top or nested.
  fc.constantFrom('{"__proto__":{"polluted":1}}', '{"model_config":{"constructor":{"prototype":{"x":1}}}}', '{"\\u005f_proto__":{}}', '[{"__proto__":null}]')
)

describe('fuzzing the HTTP layer (engine unavailable, shared secret set)', () => {
  let dirs: TempDirs
  let app: FastifyInstance
  const crashes: unknown[] = []
  const onCrash = (err: unknown) => { crashes.push(err) }
  let cases = 0

  const inject = async (opts: InjectOptions) => {
    cases++
    return app.inject(opts)
  }

  before(async () => {
    process.on('uncaughtException', onCrash)
    process.on('unhandledRejection', onCrash)
    dirs = tempDirs()
    app = await buildApp(testConfig(dirs, { OPENCODE_SHARED_SECRET: SECRET, OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
    await app.ready()
  })

  after(async () => {
    // Still alive and sane after everything it was sent.
    const res = await app.inject({ url: '/healthz' })
    assert.equal(res.statusCode, 200)
    await app.close()
    dirs.cleanup()
    process.off('uncaughtException', onCrash)
    process.off('unhandledRejection', onCrash)
    assert.deepEqual(crashes, [])
    console.log(`fuzz: ${cases} requests (seed ${SEED})`)
  })

  const post = (payload: string | Buffer, headers: Record<string, string | undefined> = { 'content-type': 'application/json' }) => {
    const sent: Record<string, string> = { authorization: AUTH }
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) sent[k] = v
    return inject({ method: 'POST', url: '/sessions', headers: sent, payload })
  }

  test('a valid body is 503 Not ready with Retry-After (the oracle agrees)', async () => {
    await fc.assert(fc.asyncProperty(validBody, async (body) => {
      const payload = JSON.stringify(body)
      const check = expectFor(payload)
      assert.deepEqual(check.allowed, [503, 400])
      const res = await post(payload)
      assertContract(res, { allowed: [503] })
    }), options(300))
  })

  test('mutated POST /sessions bodies: 400 naming a field of the request, 413, or 503 only when valid', async () => {
    await fc.assert(fc.asyncProperty(validBody, fc.array(mutation, { minLength: 1, maxLength: 3 }), async (body, mutations) => {
      const mutated = structuredClone(body) as Obj
      for (const m of mutations) mutate(mutated, m)
      const payload = JSON.stringify(mutated)
      assertContract(await post(payload), expectFor(payload))
    }), {
      ...options(2500),
      // Regression: an empty key was reported with an empty details.field.
      examples: [[
        { session_id: KNOWN_ID, prompt: 'x', model_config: { provider: 'openai', model: 'm', api_key: `${KEY_MARK}1`, temperature: 1, max_tokens: 1, enabled_tools: [] } },
        [{ op: 'set', path: [''], value: 1 }, { op: 'set', path: ['model_config', ''], value: 1 }],
      ]],
    })
  })

  test('the body is replaced by junk of any JSON type', async () => {
    await fc.assert(fc.asyncProperty(junk, async (value) => {
      const payload = JSON.stringify(value) ?? 'null'
      assertContract(await post(payload), expectFor(payload))
    }), options(400))
  })

  test('raw bodies with any content type: never 5xx (but a valid body\'s 503), always the error shape', async () => {
    await fc.assert(fc.asyncProperty(rawPayload, contentType, fc.option(fc.nat(400).map(String), { nil: undefined, freq: 8 }), async (payload, type, length) => {
      const text = Buffer.isBuffer(payload) ? payload.toString('utf8') : payload
      let valid = false
      try {
        valid = Value.Check(CreateSessionBody, JSON.parse(text)) && !endpointRejected(JSON.parse(text))
      } catch {}
      const res = await post(payload, { 'content-type': type, 'content-length': length })
      assertContract(res, { allowed: valid ? [400, 413, 415, 503] : [400, 413, 415] })
      const json = type !== undefined && /^application\/json\s*(;|$)/i.test(type)
      if (!json && type !== undefined && type.trim() !== '' && !/json/i.test(type) && text.length > 0 && length === undefined) {
        assert.equal(res.statusCode, 415, `${type}: ${res.body}`)
      }
    }), options(1500))
  })

  test('deeply nested JSON (to 400k levels) is a 400 or a 413, never a stack overflow', async () => {
    const shapes = ['arrays', 'objects', 'mixed', 'unclosed', 'in-field', 'in-tools', 'in-unknown-field'] as const
    await fc.assert(fc.asyncProperty(fc.constantFrom(1_000, 10_000, 100_000, 400_000), fc.constantFrom(...shapes), async (depth, shape) => {
      const open = shape === 'objects' ? '{"a":' : shape === 'mixed' ? '[{"a":' : '['
      const close = shape === 'objects' ? '}' : shape === 'mixed' ? '}]' : ']'
      const deep = open.repeat(depth) + '1' + (shape === 'unclosed' ? '' : close.repeat(depth))
      const base = JSON.stringify({ session_id: KNOWN_ID, prompt: 'x', model_config: { provider: 'openai', model: 'm', api_key: `${KEY_MARK}1`, temperature: 1, max_tokens: 1, enabled_tools: ['read'] } })
      const payload = shape === 'in-field'
        ? base.replace('"prompt":"x"', `"prompt":${deep}`)
        : shape === 'in-tools'
          ? base.replace('["read"]', `[${deep},${deep}]`)
          : shape === 'in-unknown-field' ? base.replace('{', `{"junk":${deep},`) : deep
      const res = await post(payload)
      assertContract(res, Buffer.byteLength(payload) > BODY_LIMIT_BYTES ? { allowed: [413] } : { allowed: [400] })
    }), { ...options(28), numRuns: 28 })
  })

  test('bodies near and over the 1 MiB limit', async () => {
    const types = [undefined, 'application/json', 'text/plain'] as const
    await fc.assert(fc.asyncProperty(
      fc.constantFrom(-1000, -1, 0, 1, 1000, BODY_LIMIT_BYTES),
      fc.constantFrom('string', 'prompt', 'unknown-field'),
      fc.constantFrom(...types),
      async (delta, shape, type) => {
        const size = BODY_LIMIT_BYTES + delta
        const pad = (json: string) => json.replace('PAD', 'x'.repeat(size - Buffer.byteLength(json) + 3))
        const payload = shape === 'string'
          ? pad('"PAD"')
          : shape === 'prompt'
            ? pad(JSON.stringify({ session_id: KNOWN_ID, prompt: 'PAD', model_config: {} }))
            : pad(JSON.stringify({ junk: 'PAD' }))
        assert.equal(Buffer.byteLength(payload), size)
        const res = await post(payload, { 'content-type': type })
        const expected = type === 'application/json' ? (size > BODY_LIMIT_BYTES ? 413 : 400) : 415
        assertContract(res, { allowed: type === 'application/json' ? [expected] : [413, 415] })
        if (type === 'application/json' && expected === 400) assert.ok(res.json().details?.field, res.body)
      }
    ), { ...options(40), numRuns: 40 })
  })

  test('a 5xx never carries an internal path (engine binary, workspace, state dir) or a stack', async () => {
    // Let the engine's failed spawn be recorded first.
    await new Promise(resolve => setTimeout(resolve, 200))
    const res = await post(JSON.stringify(fc.sample(validBody, { seed: SEED, numRuns: 1 })[0]))
    assertContract(res, { allowed: [503] })
    for (const internal of ['/nonexistent/opencode', dirs.root, 'node_modules', '    at ']) assert.ok(!res.body.includes(internal), `${internal} in ${res.body}`)
    const ready = await app.inject({ url: '/ready' })
    assert.equal(ready.statusCode, 503)
    assert.ok(!ready.body.includes('/nonexistent/opencode'), ready.body)
  })

  // ---- paths, queries and headers ----

  /** Percent-encodes everything but visible ASCII, byte by byte (lone surrogates included). */
  const encode = (s: string) => Array.from(s).map(c => /^[\x21-\x7e]$/.test(c)
    ? c
    : [...Buffer.from(c)].map(b => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')).join('')

  const oddPercent = fc.constantFrom('%', '%%', '%zz', '%0', '%E0%A4%A', '%C3%28', '%FF', '%00', '%2F', '%2f', '%2e%2e', '%252F', '%u0041', '%C0%AF', '%ED%A0%80', '%F0%9F%98', '%0A', '%20')

  const segment = fc.oneof(
    fc.uuid(),
    fc.uuid().map(u => u.toUpperCase()),
    badUuid.map(encodeURIComponent),
    fc.string({ unit: 'binary', maxLength: 40 }).map(encode),
    fc.string({ unit: fc.constantFrom('a', '0', '-', '%', '/', '.', ';', '=', '&', '+', '~', '\\', '*', ':', '@', '!', '$', "'", '(', ')'), maxLength: 40 }),
    fc.array(fc.oneof(oddPercent, fc.stringMatching(/^[\w-]{0,6}$/)), { minLength: 1, maxLength: 6 }).map(parts => parts.join('')),
    fc.integer({ min: 37, max: 20_000 }).map(n => 'a'.repeat(n)),
    fc.uuid().map(u => `${u}${'%00'}`),
    fc.constantFrom('', '.', '..', '%2e%2e', 'status', 'stream', KNOWN_ID)
  )

  const method = fc.constantFrom('GET', 'HEAD', 'DELETE', 'POST', 'PUT', 'PATCH', 'OPTIONS') as fc.Arbitrary<NonNullable<InjectOptions['method']>>

  test('arbitrary session ids and paths: never 5xx, always the error shape', async () => {
    await fc.assert(fc.asyncProperty(
      method,
      segment,
      fc.constantFrom('/sessions/S/status', '/sessions/S/stream', '/sessions/S', '/sessions/S/', '/sessionsS', '/S', '/sessions/S/status/S', '/sessions//S', '/S/sessions'),
      fc.boolean(),
      async (m, seg, template, authed) => {
        const url = template.replaceAll('S', seg)
        // inject parses the URL with WHATWG rules, which read `//host` and `/\\host` as an authority.
        fc.pre(!/^\/[/\\]/.test(url))
        const res = await inject({ method: m, url, headers: authed ? { authorization: AUTH } : {} })
        // Probes and docs may be reached through odd paths: any 2xx/3xx is theirs.
        if (res.statusCode === 503) {
          assert.equal(m === 'GET' || m === 'HEAD', true)
          if (m === 'GET') assert.equal(res.json().status, 'not ready', res.body)
          return
        }
        if (res.statusCode < 400) {
          assertContract(res, { allowed: [res.statusCode] })
          return
        }
        assertContract(res, { allowed: [400, 401, 404, 406, 413, 414, 415], head: m === 'HEAD' })
      }
    ), {
      ...options(1800),
      // Regression: routing errors (bad percent-encoding, over-long parameter) had Fastify's own body.
      examples: [['GET', '%zz', '/sessions/S/status', true], ['GET', 'a'.repeat(101), '/sessions/S/status', false], ['DELETE', '%E0%A4%A', '/sessions/S', true]],
    })
  })

  test('arbitrary stream cursors in the query: 400 naming the field, or 404 for the unknown session', async () => {
    const value = fc.oneof(
      fc.stringMatching(/^\d{1,20}$/),
      fc.integer().map(String),
      fc.string({ unit: 'binary', maxLength: 30 }).map(encode),
      fc.array(fc.oneof(oddPercent, fc.stringMatching(/^[\w-]{0,4}$/)), { minLength: 1, maxLength: 4 }).map(p => p.join('')),
      fc.constantFrom('', '-1', '1e3', '0x10', ' 1', '1 ', '+1', '1.0', 'NaN', 'Infinity', '9'.repeat(16), '0'.repeat(15))
    )
    const query = fc.oneof(
      value.map(v => `last_event_id=${v}`),
      fc.tuple(value, value).map(([a, b]) => `last_event_id=${a}&last_event_id=${b}`),
      value.map(v => `last_event_id[]=${v}`),
      value.map(v => `last_event_id[x]=${v}`),
      fc.constantFrom('last_event_id', 'last_event_id=', '=', '&&', '%zz=1', '__proto__[x]=1', 'constructor[prototype][x]=1', '__proto__=1', 'unknown=1', 'last_event_id=1#x')
    )
    await fc.assert(fc.asyncProperty(query, async (q) => {
      const res = await inject({ url: `/sessions/${KNOWN_ID}/stream?${q}`, headers: { authorization: AUTH } })
      assertContract(res, { allowed: [400, 404], fieldRequired: true })
    }), options(1200))
  })

  test('junk in Authorization, Accept and Last-Event-ID headers', async () => {
    const authorization = fc.oneof(
      fc.constant(AUTH),
      fc.constantFrom(`bearer ${SECRET}`, `Bearer \t${SECRET} `, `Bearer  ${SECRET}`),
      fc.constantFrom(SECRET, `Bearer ${SECRET}x`, `Bearer x${SECRET}`, `Bearer ${SECRET.slice(0, -1)}`, `Bearer ${SECRET.toUpperCase()}`,
        `Basic ${Buffer.from(`u:${SECRET}`).toString('base64')}`, 'Bearer', 'Bearer ', `Bearer ${SECRET} ${SECRET}`, `Token ${SECRET}`, ''),
      fc.nat(SECRET.length - 1).map(i => `Bearer ${SECRET.slice(0, i)}${SECRET[i] === 'a' ? 'b' : 'a'}${SECRET.slice(i + 1)}`),
      headerValue(),
      headerValue().map(v => `Bearer ${v}`)
    )
    const accept = fc.option(fc.oneof(
      fc.constantFrom('text/event-stream', '*/*', 'text/*', 'application/json', 'text/event-stream;q=0', 'text/html, */*;q=0.1', ';q=0,,;', ',,,', 'TEXT/EVENT-STREAM', '*/*;q=0'),
      headerValue()
    ), { nil: undefined })
    const lastEventId = fc.option(fc.oneof(fc.stringMatching(/^\d{1,16}$/), headerValue(), fc.constantFrom(' 5 ', '-1', '1e3', '')), { nil: undefined })
    await fc.assert(fc.asyncProperty(authorization, accept, lastEventId, method, async (auth, acc, lei, m) => {
      const headers: Record<string, string> = {}
      if (auth !== '') headers.authorization = auth
      if (acc !== undefined) headers.accept = acc
      if (lei !== undefined) headers['last-event-id'] = lei
      const url = m === 'DELETE' ? `/sessions/${KNOWN_ID}` : `/sessions/${KNOWN_ID}/stream`
      const res = await inject({ method: m, url, headers })
      const token = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth)?.[1]
      const routed = m === 'GET' || m === 'HEAD' || m === 'DELETE'
      if (routed && token !== SECRET) {
        assertContract(res, { allowed: [401], head: m === 'HEAD' })
      } else {
        assertContract(res, { allowed: [400, 404, 406], head: m === 'HEAD', fieldRequired: true })
      }
    }), options(1500))
  })
})
