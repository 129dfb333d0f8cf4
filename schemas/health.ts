import { Type } from '@sinclair/typebox'

export const LiveBody = Type.Object({ status: Type.Literal('ok') }, { title: 'Liveness' })

export const ReadyBody = Type.Object({ status: Type.Literal('ready') }, { title: 'Ready' })

export const NotReadyBody = Type.Object({
  status: Type.Literal('not ready'),
  error: Type.String({ description: 'Why the sidecar is not ready (engine starting/down, workspace missing or read-only, shutting down)' }),
}, { title: 'NotReady' })
