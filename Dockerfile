# backproof in a container. It drives the host's Docker engine to create sandboxes, so mount
# the engine's socket (or set DOCKER_HOST), and keep the evidence store in a volume:
#
#   docker build -t backproof .
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock \
#     -v "$PWD/backproof.yaml:/etc/backproof/backproof.yaml:ro" -v /mnt/nas:/mnt/nas:ro \
#     -v backproof-data:/var/lib/backproof backproof run
#
# Backup paths in the config are read by this container: mount them at the same paths.
# Sandbox images (backproof images build postgres) are built on the host, where mmdebstrap runs.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY orchestrator orchestrator
COPY drivers drivers
COPY restore-sandboxes restore-sandboxes
COPY reports reports
COPY scripts scripts
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# restic for `driver: restic` sources.
RUN apt-get update && apt-get install -y --no-install-recommends restic ca-certificates && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    BACKPROOF_CONFIG=/etc/backproof/backproof.yaml \
    BACKPROOF_DATA_DIR=/var/lib/backproof \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY bin bin
COPY orchestrator/evidence/migrations orchestrator/evidence/migrations
VOLUME /var/lib/backproof
ENTRYPOINT ["node", "/app/bin/backproof.js"]
# The scheduler: verifies on each policy's schedule and alerts. SIGTERM drains running runs for
# daemon.shutdownGrace: give `docker stop -t` at least that long. SIGHUP (docker kill -s HUP) reloads.
# For a health check, set daemon.liveness.port and probe http://127.0.0.1:<port>/healthz.
CMD ["daemon"]
