#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { runConformance } from './checks.js'

const usage = `Usage: opencode-server-conformance --url http://host:3003 [--secret S]
       [--model-endpoint URL [--model ID] [--api-key KEY] [--prompt TEXT]] [--timeout-ms N]

Checks a running opencode-server against its API contract: probes, error shapes, auth,
OpenAPI, and (with --model-endpoint, an OpenAI-compatible endpoint the sidecar can reach)
a full session with its event stream. Exit code 0 when every check passes.`

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    secret: { type: 'string' },
    'model-endpoint': { type: 'string' },
    model: { type: 'string' },
    'api-key': { type: 'string' },
    prompt: { type: 'string' },
    'timeout-ms': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})

if (values.help || !values.url) {
  process.stdout.write(`${usage}\n`)
  process.exit(values.help ? 0 : 2)
}

const results = await runConformance({
  url: values.url,
  secret: values.secret ?? process.env.OPENCODE_SHARED_SECRET,
  modelEndpoint: values['model-endpoint'],
  model: values.model,
  apiKey: values['api-key'],
  prompt: values.prompt,
  timeoutMs: values['timeout-ms'] ? Number(values['timeout-ms']) : undefined,
})
for (const r of results) process.stdout.write(`${r.ok ? 'PASS' : 'FAIL'}  ${r.name}${r.detail ? ` — ${r.detail}` : ''}\n`)
const failed = results.filter(r => !r.ok).length
process.stdout.write(`\n${results.length - failed} passed, ${failed} failed\n`)
process.exit(failed ? 1 : 0)
