// No Docker engine runs here, so this test replays the Dockerfile's own steps on a clean copy of
// the repo: each stage gets a temp dir standing for its WORKDIR, COPY copies from the build
// context (git's files less .dockerignore) or another stage, the npm/node RUN lines run there, and
// the final CMD starts the sidecar with the image's ENV. Reading the steps from the Dockerfile keeps
// the recipe and its proof from drifting apart. System steps (apt-get, users, directories) need a
// root filesystem and are checked for intent instead.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { scenario, startModelServer } from './support/model-server.js'
import { parseSse, sleep } from './support/harness.js'
import { freePort } from '../src/engine/supervisor.js'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

interface Instruction { keyword: string, args: string }

/** Dockerfile instructions with continuations joined and comments dropped. */
function parseDockerfile (text: string): Instruction[] {
  const out: Instruction[] = []
  let current = ''
  for (const line of text.split('\n')) {
    if (current === '' && /^\s*(#|$)/.test(line)) continue
    if (/^\s*#/.test(line)) continue
    current += line.replace(/\\$/, '').trim() + ' '
    if (line.endsWith('\\')) continue
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(current.trim()) ?? []
    out.push({ keyword: keyword.toUpperCase(), args })
    current = ''
  }
  return out
}

/** Docker's .dockerignore matching: patterns anchored at the context root, `**` across folders. */
function ignoredBy (patterns: string[]): (file: string) => boolean {
  const rules = patterns.map(p => {
    const negate = p.startsWith('!')
    const glob = path.posix.normalize(negate ? p.slice(1) : p).replace(/^\//, '')
    const source = glob.split(/(\*\*|\*|\?)/).map(part =>
      part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&')).join('')
    return { negate, re: new RegExp(`^${source}(/.*)?$`) }
  })
  return (file) => rules.reduce((ignored, rule) => rule.re.test(file) ? !rule.negate : ignored, false)
}

/** The build context: the files git would commit, less those .dockerignore excludes. */
function buildContext (dest: string): void {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, encoding: 'utf8' })
  assert.equal(listed.status, 0, listed.stderr)
  const patterns = readFileSync(path.join(repo, '.dockerignore'), 'utf8').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  const ignored = ignoredBy(patterns)
  for (const file of listed.stdout.split('\0')) {
    if (file === '' || ignored(file) || !existsSync(path.join(repo, file))) continue
    cpSync(path.join(repo, file), path.join(dest, file))
  }
}

/** `["a", "b"]` (exec form) or a shell string. */
function command (args: string): string[] {
  return args.startsWith('[') ? JSON.parse(args) as string[] : ['sh', '-c', args]
}

function parseEnv (args: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const pair of args.split(/\s+/).filter(Boolean)) {
    const eq = pair.indexOf('=')
    env[pair.slice(0, eq)] = pair.slice(eq + 1).replace(/^"(.*)"$/, '$1')
  }
  return env
}

/** Polls /ready until 200; a refused connection just means "not listening yet". */
async function waitReady (url: string, timeoutMs: number, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = 'no answer'
  while (Date.now() < deadline && !exited()) {
    try {
      const res = await fetch(`${url}/ready`)
      if (res.status === 200) return
      last = await res.text()
    } catch (err) {
      last = String(err)
    }
    await sleep(250)
  }
  throw new Error(`not ready: ${last}`)
}

interface Stage { name: string | undefined, dir: string, workdir: string, env: Record<string, string> }

test('the Dockerfile\'s build and start steps work from a clean copy of the repo', { timeout: 300_000 }, async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'ocs-docker-'))
  const children: ChildProcess[] = []
  t.after(() => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
    rmSync(root, { recursive: true, force: true })
  })

  const instructions = parseDockerfile(readFileSync(path.join(repo, 'Dockerfile'), 'utf8'))
  const context = path.join(root, 'context')
  buildContext(context)

  const stages: Stage[] = []
  const skipped: string[] = []
  let healthcheck: string[] | undefined
  let cmd: string[] | undefined
  let entrypoint: string[] | undefined
  let user: string | undefined
  const exposed: string[] = []
  const npmEnv = { ...process.env, npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' }

  for (const { keyword, args } of instructions) {
    const stage = stages.at(-1)
    const inStage = (p: string, s: Stage) => path.join(s.dir, path.posix.isAbsolute(p) ? path.posix.relative(s.workdir, p) : p)
    switch (keyword) {
      case 'FROM': {
        const [, image, name] = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args) ?? []
        assert.equal(image, 'node:20-bookworm-slim')
        const dir = path.join(root, `stage-${stages.length}`)
        mkdirSync(dir)
        stages.push({ name, dir, workdir: '/', env: {} })
        break
      }
      case 'WORKDIR':
        stage!.workdir = args
        break
      case 'ENV':
        Object.assign(stage!.env, parseEnv(args))
        break
      case 'COPY': {
        const parts = args.split(/\s+/)
        const from = parts[0].startsWith('--from=') ? stages.find(s => s.name === parts.shift()!.slice(7)) : undefined
        const dest = parts.pop()!
        for (const src of parts) {
          const source = from ? inStage(src, from) : path.join(context, src)
          assert.ok(existsSync(source), `COPY ${src}: not in the ${from ? `stage ${from.name}` : 'build context (check .dockerignore)'}`)
          const target = dest.endsWith('/') ? path.join(inStage(dest, stage!), path.basename(src)) : inStage(dest, stage!)
          cpSync(source, target, { recursive: true })
        }
        break
      }
      case 'RUN': {
        const shell = args.replace(/^(--\S+\s+)+/, '')
        if (!/^(npm|node) /.test(shell)) {
          skipped.push(shell)
          break
        }
        const started = Date.now()
        const run = spawnSync('sh', ['-c', shell], { cwd: stage!.dir, env: { ...npmEnv, ...stage!.env }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
        t.diagnostic(`RUN ${shell.slice(0, 70)}… ${Date.now() - started} ms`)
        assert.equal(run.status, 0, `RUN ${shell} failed:\n${run.stdout}\n${run.stderr}`)
        break
      }
      case 'HEALTHCHECK':
        healthcheck = command(args.replace(/^(--\S+\s+)*CMD\s+/, ''))
        break
      case 'EXPOSE':
        exposed.push(...args.split(/\s+/))
        break
      case 'USER':
        user = args
        break
      case 'ENTRYPOINT':
        entrypoint = command(args)
        break
      case 'CMD':
        cmd = command(args)
        break
    }
  }

  // What a Docker engine would do with the steps this test cannot replay.
  const system = skipped.join('\n')
  for (const pkg of ['ripgrep', 'git', 'tini']) assert.match(system, new RegExp(`apt-get install .*\\b${pkg}\\b`), `${pkg} installed`)
  assert.match(system, /chown node:node \/workspace \/var\/lib\/opencode-server/)
  assert.equal(user, 'node')
  assert.deepEqual(exposed, ['3003'])
  assert.deepEqual(entrypoint, ['tini', '--'])
  // The image starts the server exactly as `npm start` does (node flags included; the bench runs those too).
  const start = (JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start
  assert.deepEqual(cmd, start.split(/\s+/))
  assert.equal(cmd?.at(-1), 'dist/src/server.js')
  assert.ok(healthcheck, 'HEALTHCHECK')
  const runtime = stages.at(-1)!
  assert.ok(!existsSync(path.join(runtime.dir, 'node_modules', 'typescript')), 'the runtime has production dependencies only')
  assert.ok(!existsSync(path.join(runtime.dir, 'src')), 'the runtime has no TypeScript sources')

  // Start the image's CMD with its ENV, as a container would (a bare environment, its own dirs).
  const model = await startModelServer()
  t.after(() => model.close())
  const workspace = path.join(root, 'workspace')
  const state = path.join(root, 'state')
  const home = path.join(root, 'home')
  for (const dir of [workspace, state, home]) mkdirSync(dir)
  const port = await freePort()
  const secret = randomUUID()
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    ...runtime.env,
    WORKSPACE_DIR: workspace,
    STATE_DIR: state,
    HOST: '127.0.0.1',
    PORT: String(port),
    OPENCODE_SHARED_SECRET: secret,
  }
  const server = spawn(cmd[0], cmd.slice(1), { cwd: runtime.dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(server)
  let log = ''
  server.stdout!.on('data', (chunk: Buffer) => { log += chunk.toString() })
  server.stderr!.on('data', (chunk: Buffer) => { log += chunk.toString() })
  const exited = new Promise<number | null>(resolve => server.on('exit', code => resolve(code)))
  const url = `http://127.0.0.1:${port}`
  let phase = Date.now()
  const lap = (what: string) => { t.diagnostic(`${what} ${Date.now() - phase} ms`); phase = Date.now() }

  await waitReady(url, 90_000, () => server.exitCode !== null).catch((err: Error) => {
    throw new Error(`${err.message} (exit code ${server.exitCode})\n${log}`)
  })
  lap('ready')
  assert.equal((await fetch(`${url}/healthz`)).status, 200)
  assert.equal((await fetch(`${url}/ready`)).status, 200)
  const probe = spawnSync(healthcheck[0], healthcheck.slice(1), { cwd: runtime.dir, env, encoding: 'utf8', timeout: 10_000 })
  assert.equal(probe.status, 0, `HEALTHCHECK failed: ${probe.stderr}`)

  model.setHandler(scenario([
    { toolCalls: [{ name: 'bash', args: { command: 'printf "built\\n" > image.txt', description: 'write a file' } }] },
    { text: 'Wrote image.txt.' },
  ]))
  const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' }
  const sessionId = randomUUID()
  const created = await fetch(`${url}/sessions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      session_id: sessionId,
      prompt: 'Write image.txt',
      model_config: { provider: 'openai-compatible', model: 'scripted-model', api_key: 'sk-docker-test', temperature: 0, max_tokens: 512, enabled_tools: ['bash'], api_endpoint: `${model.url}/v1` },
    }),
  })
  assert.equal(created.status, 201, await created.clone().text())
  const stream = await fetch(`${url}/sessions/${sessionId}/stream`, { headers: { authorization: headers.authorization }, signal: AbortSignal.timeout(90_000) })
  const events = parseSse(await stream.text())
  assert.equal(events.at(-1)?.event, 'complete', JSON.stringify(events.slice(-3)))
  assert.deepEqual(events.at(-1)?.data.files_modified, ['image.txt'])
  assert.equal(readFileSync(path.join(workspace, 'image.txt'), 'utf8'), 'built\n')
  lap('session')

  // tini forwards SIGTERM to this process: it must end cleanly within SHUTDOWN_GRACE.
  server.kill('SIGTERM')
  assert.equal(await exited, 0, log)
  lap('SIGTERM to exit')
})
