import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { loadConfig, type Config } from '../../src/config.js'

export interface TempDirs { workspaceDir: string, stateDir: string, root: string, cleanup: () => void }

/** A fresh workspace and state dir side by side under one temp root. */
export function tempDirs (): TempDirs {
  const root = mkdtempSync(path.join(tmpdir(), 'ocs-test-'))
  const workspaceDir = path.join(root, 'workspace')
  const stateDir = path.join(root, 'state')
  mkdirSync(workspaceDir)
  mkdirSync(stateDir)
  return { root, workspaceDir, stateDir, cleanup: () => rmSync(root, { recursive: true, force: true }) }
}

/** A production config read from an environment, for the given dirs. */
export function testConfig (dirs: Pick<TempDirs, 'workspaceDir' | 'stateDir'>, env: Record<string, string> = {}): Config {
  return loadConfig({ WORKSPACE_DIR: dirs.workspaceDir, STATE_DIR: dirs.stateDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'error', ...env })
}
