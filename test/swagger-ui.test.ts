// Swagger UI in a real browser: headless Chromium (Debian `chromium`) driven by playwright-core.
// Skips where Chromium is absent; CI installs it (.ci/run).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { tempDirs, testConfig, type TempDirs } from './support/config.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
]
const OPERATIONS = [
  'GET /healthz', 'GET /health', 'GET /ready', 'POST /sessions',
  'GET /sessions/{sessionId}/stream', 'DELETE /sessions/{sessionId}', 'GET /sessions/{sessionId}/status',
]

describe('Swagger UI in headless Chromium', { skip: existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM} (Debian: apt-get install chromium): Swagger UI browser test not run` }, () => {
  let dirs: TempDirs
  let app: FastifyInstance
  let url: string
  let browser: Browser
  let page: Page

  before(async () => {
    dirs = tempDirs()
    // The docs need no engine: a missing binary only keeps /ready at 503.
    app = await buildApp(testConfig(dirs, { OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 60_000 })
    page = await browser.newPage()
    page.setDefaultTimeout(30_000)
    // Everything the page loads comes from the sidecar: fail on any other request.
    await page.route(request => !request.href.startsWith(url), route => route.abort())
    await page.goto(`${url}/docs`)
  })
  after(async () => {
    await browser?.close()
    await app?.close()
    dirs?.cleanup()
  })

  test('the seven operations render', async () => {
    await page.locator('.opblock').first().waitFor()
    const rendered = await page.locator('.opblock').evaluateAll(blocks => blocks.map(block =>
      `${block.querySelector('.opblock-summary-method')?.textContent ?? ''} ${block.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? ''}`))
    for (const operation of OPERATIONS) assert.ok(rendered.includes(operation), `${operation} in ${JSON.stringify(rendered)}`)
    assert.deepEqual(rendered.filter(op => !OPERATIONS.includes(op) && op !== 'GET /metrics'), [], 'no other operation')
  })

  test('"Try it out" → Execute on GET /healthz shows a 200', async () => {
    const block = page.locator('.opblock', { has: page.locator('.opblock-summary-path[data-path="/healthz"]') })
    await block.locator('.opblock-summary').click()
    await block.locator('button.try-out__btn').click()
    await block.locator('button.execute').click()
    const status = block.locator('.live-responses-table .response .response-col_status')
    await status.waitFor()
    assert.equal((await status.textContent())?.trim(), '200')
    assert.match(await block.locator('.live-responses-table .response .response-col_description').textContent() ?? '', /"status": "ok"/)
    if (process.env.SWAGGER_SCREENSHOT) await page.screenshot({ path: process.env.SWAGGER_SCREENSHOT, fullPage: true })
  })
})
