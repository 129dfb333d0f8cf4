import { execFile } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve as resolvePath } from 'node:path'

/** The engine version this sidecar is built and tested against. */
export const OPENCODE_VERSION = '1.18.33'

function isExecutable (file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

function platformPackages (): string[] {
  const os = process.platform === 'win32' ? 'windows' : process.platform
  const base = `opencode-${os}-${process.arch}`
  return [base, `${base}-baseline`, `${base}-musl`, `${base}-baseline-musl`]
}

/**
 * Where the `opencode` binary is: `OPENCODE_BIN` wins; otherwise the native binary of the
 * platform package (npm may skip opencode-ai's postinstall, the platform package is always there);
 * otherwise the `node_modules/.bin/opencode` link.
 */
export function resolveOpencodeBin (env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string {
  const override = env.OPENCODE_BIN
  if (override !== undefined && override !== '') {
    const file = resolvePath(cwd, override)
    if (!isExecutable(file)) throw new Error(`OPENCODE_BIN=${override} is not an executable file`)
    return file
  }
  const exe = process.platform === 'win32' ? 'opencode.exe' : 'opencode'
  const candidates = [join(cwd, 'node_modules', 'opencode-linux-x64', 'bin', exe)]
  const require = createRequire(import.meta.url)
  for (const pkg of platformPackages()) {
    try {
      candidates.push(join(dirname(require.resolve(`${pkg}/package.json`)), 'bin', exe))
    } catch {
      // not installed for this platform variant
    }
  }
  candidates.push(join(cwd, 'node_modules', '.bin', 'opencode'))
  const found = candidates.find(isExecutable)
  if (found === undefined) {
    throw new Error(`opencode binary not found (looked at ${candidates.join(', ')}); set OPENCODE_BIN`)
  }
  return found
}

/**
 * Runs `<bin> --version` and throws unless it prints `expected`. Returns the version.
 * The probe gets a throwaway HOME: even `--version` creates its cache/config/data folders there.
 */
export async function checkVersion (bin: string, expected: string = OPENCODE_VERSION, timeoutMs = 15_000): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'opencode-version-'))
  let output: string
  try {
    output = await new Promise<string>((resolve, reject) => {
      execFile(bin, ['--version'], {
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, OPENCODE_DISABLE_AUTOUPDATE: '1', OPENCODE_DISABLE_MODELS_FETCH: '1' },
      }, (err, stdout) => {
        if (err !== null) {
          reject(new Error(`could not run '${bin} --version': ${err.killed ? `no answer within ${timeoutMs} ms` : err.message}`))
          return
        }
        resolve(stdout)
      })
    })
  } finally {
    await rm(home, { recursive: true, force: true })
  }
  const version = output.trim().split(/\s+/).pop() ?? ''
  if (version !== expected) {
    throw new Error(`opencode at ${bin} is version '${version}', this sidecar requires exactly ${expected}`)
  }
  return version
}
