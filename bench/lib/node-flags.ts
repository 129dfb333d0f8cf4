import { readFileSync } from 'node:fs'
import path from 'node:path'
import { BENCH_DIR } from './build.js'

/**
 * The node flags of `npm start` (the Dockerfile's CMD is checked to be the same), so the bench
 * measures the sidecar as it is deployed: e.g. `--max-semi-space-size`, which bounds its RSS.
 */
export function serverNodeFlags (): string[] {
  const pkg = JSON.parse(readFileSync(path.join(BENCH_DIR, '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  const [node, ...args] = pkg.scripts.start.split(/\s+/)
  if (node !== 'node') throw new Error(`npm start does not run node: ${pkg.scripts.start}`)
  return args.filter(a => a.startsWith('--'))
}
