import { build } from 'esbuild'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const BENCH_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
export const BUILD_DIR = path.join(BENCH_DIR, '.build')
export const BUNDLE_DIR = path.join(BUILD_DIR, 'bundle')

/**
 * Compiles the processes the bench starts into plain JS (dependencies stay external, resolved from
 * the project's node_modules), so they run with bare `node` as the built server does: no TypeScript
 * loader in their memory or start-up.
 */
export async function bundle (): Promise<{ sidecar: string, servers: string }> {
  mkdirSync(BUNDLE_DIR, { recursive: true })
  // plugins/swagger.ts reads `../package.json` relative to its module.
  const pkg = JSON.parse(readFileSync(path.join(BENCH_DIR, '..', 'package.json'), 'utf8')) as { version: string }
  writeFileSync(path.join(BUILD_DIR, 'package.json'), JSON.stringify({ type: 'module', version: pkg.version }))
  await build({
    entryPoints: [path.join(BENCH_DIR, 'sidecar.ts'), path.join(BENCH_DIR, 'servers.ts')],
    outdir: BUNDLE_DIR,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  })
  return { sidecar: path.join(BUNDLE_DIR, 'sidecar.mjs'), servers: path.join(BUNDLE_DIR, 'servers.mjs') }
}
