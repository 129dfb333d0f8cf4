# syntax=docker/dockerfile:1
# opencode-server: the sidecar and its pinned OpenCode engine.
# test/docker-steps.test.ts replays this file's npm/node steps from a clean copy of the repo,
# so keep every install, build and start step in a RUN/COPY/CMD line here.

# --- build: dev dependencies, TypeScript → dist/ --------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The npm cache is a BuildKit cache mount: it never lands in a layer.
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
COPY schemas ./schemas
RUN npm run build

# --- runtime: production dependencies, the engine binary, no compiler -----------------------
FROM node:20-bookworm-slim
# ripgrep: the engine's grep/glob tools; git: the engine's workspace snapshots;
# tini: PID 1 that forwards SIGTERM and reaps the engine's orphaned children.
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ripgrep git tini ca-certificates \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    WORKSPACE_DIR=/workspace \
    STATE_DIR=/var/lib/opencode-server \
    HOST=0.0.0.0 \
    PORT=3003
WORKDIR /app
COPY package.json package-lock.json ./
# The engine binary comes from opencode-ai's platform package (opencode-linux-x64 or -arm64),
# pinned by package.json; its postinstall is not needed (the sidecar finds the binary itself).
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund --ignore-scripts
COPY --from=build /app/dist ./dist
# Fail the build, not the pod, when the engine binary is missing or not the pinned version.
RUN node --input-type=module -e "const b = await import('./dist/src/engine/binary.js'); console.log('opencode', await b.checkVersion(b.resolveOpencodeBin()))"
# uid 1000 (`node`): the Kubernetes securityContext runs as this user too.
RUN mkdir -p /workspace /var/lib/opencode-server \
  && chown node:node /workspace /var/lib/opencode-server
USER node
EXPOSE 3003
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3003) + '/healthz').then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["tini", "--"]
CMD ["node", "--max-semi-space-size=2", "dist/src/server.js"]
