// The npm registry mirror this project is built from serves only the packages of the platform it
// runs on, so `npm install` writes a lock file without the other platforms' optional binaries
// (opencode-darwin-arm64, …) and `npm ci` then refuses it as out of sync. This adds a lock entry
// for each such missing optional dependency, carrying only its os/cpu/libc, which npm skips on
// every platform but its own. Run after changing dependencies: node scripts/complete-lockfile.mjs
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'

const LOCK = new URL('../package-lock.json', import.meta.url)
const OS = [['darwin', 'darwin'], ['windows', 'win32'], ['win32', 'win32'], ['linux', 'linux'], ['freebsd', 'freebsd'], ['android', 'android'], ['openharmony', 'openharmony']]
const CPU = [['arm64', 'arm64'], ['loong64', 'loong64'], ['riscv64', 'riscv64'], ['ppc64', 'ppc64'], ['s390x', 's390x'], ['ia32', 'ia32'], ['-arm-', 'arm'], ['x64', 'x64']]

function missing () {
  try {
    execFileSync('npm', ['ci', '--dry-run', '--no-audit', '--no-fund', '--prefer-offline'], { stdio: 'pipe', encoding: 'utf8' })
    return []
  } catch (err) {
    return [...String(err.stderr).matchAll(/Missing: (\S+?)@\S* from lock file/g)].map(m => m[1])
  }
}

for (let round = 0; round < 5; round++) {
  const names = missing()
  if (names.length === 0) {
    console.log('package-lock.json is complete')
    process.exit(0)
  }
  const lock = JSON.parse(readFileSync(LOCK, 'utf8'))
  const wanted = {}
  for (const meta of Object.values(lock.packages)) Object.assign(wanted, meta.optionalDependencies)
  for (const name of names) {
    const base = `-${name.split('/').pop()}-`
    const os = OS.find(([k]) => base.includes(k))?.[1]
    const cpu = CPU.find(([k]) => base.includes(k))?.[1]
    if (!os || !cpu || !wanted[name]) throw new Error(`cannot tell the platform of ${name}`)
    lock.packages[`node_modules/${name}`] = { version: wanted[name].replace(/^[\^~]/, ''), optional: true, os: [os], cpu: [cpu], ...(base.includes('musl') ? { libc: ['musl'] } : {}) }
    console.log(`added ${name} (${os}/${cpu})`)
  }
  lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1))
  writeFileSync(LOCK, `${JSON.stringify(lock, null, 2)}\n`)
}
throw new Error('package-lock.json is still incomplete')
