import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'
import { EnvSchema } from '../src/config.js'

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'deploy', 'kubernetes')

interface Manifest { apiVersion: string, kind: string, metadata: { name: string }, spec?: Record<string, unknown>, [key: string]: unknown }
interface EnvVar { name: string, value?: string, valueFrom?: { secretKeyRef?: { name: string, key: string } } }
interface Probe { httpGet: { path: string, port: string | number }, periodSeconds: number, timeoutSeconds: number }
interface Container {
  name: string
  image: string
  ports?: Array<{ name?: string, containerPort: number }>
  env?: EnvVar[]
  livenessProbe?: Probe
  readinessProbe?: Probe
  resources?: { requests: Record<string, string>, limits: Record<string, string> }
  securityContext?: { runAsNonRoot?: boolean, allowPrivilegeEscalation?: boolean }
  volumeMounts?: Array<{ name: string, mountPath: string }>
}
interface PodSpec {
  terminationGracePeriodSeconds: number
  securityContext: { runAsNonRoot: boolean, runAsUser: number }
  containers: Container[]
  volumes: Array<{ name: string, emptyDir?: object, persistentVolumeClaim?: { claimName: string } }>
}

/** Every document of every manifest, failing on any YAML error or warning. */
function manifests (): Manifest[] {
  const docs: Manifest[] = []
  for (const file of readdirSync(dir).filter(f => /\.ya?ml$/.test(f))) {
    for (const doc of parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'))) {
      assert.deepEqual([...doc.errors, ...doc.warnings].map(String), [], file)
      const manifest = doc.toJS() as Manifest
      assert.ok(manifest.apiVersion && manifest.kind && manifest.metadata?.name, `${file}: apiVersion, kind and metadata.name`)
      docs.push(manifest)
    }
  }
  return docs
}

const all = manifests()
const byKind = (kind: string) => all.filter(m => m.kind === kind)
const deployment = byKind('Deployment')[0]
const pod = (deployment.spec as { template: { spec: PodSpec } }).template.spec
const sidecar = pod.containers.find(c => c.name === 'opencode-server')!
const env = new Map((sidecar.env ?? []).map(e => [e.name, e]))
const seconds = (name: string) => Number(env.get(name)?.value ?? (EnvSchema.properties as Record<string, { default?: unknown }>)[name].default)

test('the deployment runs the sidecar next to the main container', () => {
  assert.equal(byKind('Deployment').length, 1)
  assert.ok(sidecar, 'an opencode-server container')
  assert.ok(pod.containers.length >= 2, 'a main container beside the sidecar')
  assert.deepEqual(sidecar.ports?.map(p => p.containerPort), [3003])
  assert.equal(env.get('PORT')?.value, '3003')
})

test('probes: liveness /healthz every 30 s (5 s timeout), readiness /ready every 10 s (3 s timeout)', () => {
  const port = sidecar.ports![0]
  for (const [probe, path, period, timeout] of [[sidecar.livenessProbe, '/healthz', 30, 5], [sidecar.readinessProbe, '/ready', 10, 3]] as const) {
    assert.ok(probe)
    assert.equal(probe.httpGet.path, path)
    assert.ok(probe.httpGet.port === port.containerPort || probe.httpGet.port === port.name, 'the probe targets the container port')
    assert.equal(probe.periodSeconds, period)
    assert.equal(probe.timeoutSeconds, timeout)
  }
})

test('resources: requests 256Mi/100m, limits 1Gi/500m', () => {
  assert.deepEqual(sidecar.resources, { requests: { memory: '256Mi', cpu: '100m' }, limits: { memory: '1Gi', cpu: '500m' } })
})

test('the pod\'s grace period exceeds SHUTDOWN_GRACE', () => {
  assert.ok(pod.terminationGracePeriodSeconds > seconds('SHUTDOWN_GRACE'),
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} must exceed SHUTDOWN_GRACE ${seconds('SHUTDOWN_GRACE')}`)
})

test('every env var is one the sidecar reads, and the shared secret comes from a Secret', () => {
  const known = new Set(Object.keys(EnvSchema.properties))
  for (const name of env.keys()) assert.ok(known.has(name), `${name} is not in src/config.ts's EnvSchema`)
  const ref = env.get('OPENCODE_SHARED_SECRET')?.valueFrom?.secretKeyRef
  assert.ok(ref, 'OPENCODE_SHARED_SECRET uses secretKeyRef')
  assert.equal(env.get('OPENCODE_SHARED_SECRET')?.value, undefined, 'no literal secret in the deployment')
  const secret = byKind('Secret').find(s => s.metadata.name === ref.name)
  assert.ok(secret, `the example Secret ${ref.name}`)
  assert.ok(ref.key in ((secret.stringData ?? secret.data) as Record<string, string>), `the Secret has key ${ref.key}`)
})

test('volumes: the workspace PVC at /workspace, an emptyDir at STATE_DIR', () => {
  const mounts = new Map((sidecar.volumeMounts ?? []).map(m => [m.mountPath, m.name]))
  const volume = (name: string | undefined) => pod.volumes.find(v => v.name === name)
  assert.equal(env.get('WORKSPACE_DIR')?.value ?? '/workspace', '/workspace')
  const claim = volume(mounts.get('/workspace'))?.persistentVolumeClaim?.claimName
  assert.ok(claim, 'the workspace is a PersistentVolumeClaim')
  assert.ok(byKind('PersistentVolumeClaim').some(p => p.metadata.name === claim), `the PVC ${claim} is defined`)
  const stateDir = env.get('STATE_DIR')?.value
  assert.ok(stateDir, 'STATE_DIR is set')
  assert.ok(volume(mounts.get(stateDir))?.emptyDir, 'STATE_DIR is an emptyDir')
})

test('runs as non-root', () => {
  assert.equal(pod.securityContext.runAsNonRoot, true)
  assert.ok(pod.securityContext.runAsUser > 0)
  assert.equal(sidecar.securityContext?.allowPrivilegeEscalation, false)
})
