# backproof in a container. The build context is the npm package with its production
# dependencies, made on the host by scripts/docker-context.sh: `docker build` copies it and runs
# nothing that needs a network.
#
#   npm ci && npm run build && scripts/docker-context.sh         # -> .docker-context/
#   docker build -t backproof .docker-context                       # FROM node:24-bookworm-slim
#   # without an image registry: a base from Debian packages and the npm registry's Node.js 24
#   docker build -t backproof --build-arg BASE_IMAGE="$(scripts/build-base-image.sh)" .docker-context
#
# It drives the host's Docker engine to create sandboxes: mount the engine's socket (or set
# DOCKER_HOST). It runs as the unprivileged user backproof (uid 10001), so give it the socket's
# group; keep the evidence store in a volume:
#
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v "$PWD/backproof.yaml:/etc/backproof/backproof.yaml:ro" -v /mnt/nas:/mnt/nas:ro \
#     -v backproof-data:/var/lib/backproof backproof run
#
# Access to the engine's socket is root on the host in all but name: the non-root user limits what
# a flaw in backproof's own process can touch inside the container, not what the engine allows.
# Backup paths in the config are read by this container: mount them at the same paths.
# Sandbox images (backproof images build postgres) are built on the host, where mmdebstrap runs.
#
# HEALTHCHECK (scripts/docker-healthcheck.mjs): for `daemon`, GET /healthz on the daemon's liveness
# port inside the container: set `daemon: { liveness: { port: 9464 } }` in the config (another
# port: also -e BACKPROOF_LIVENESS_PORT=<port>); healthy while the daemon's loop beats, unhealthy
# once it stalls or when no endpoint answers. For one-shot commands (run, demo, report, ...) it
# reports healthy: their exit code is their result.

ARG BASE_IMAGE=node:24-bookworm-slim
FROM ${BASE_IMAGE}
# restic for `driver: restic` sources; zstd, xz and bzip2 check a compressed backup's first bytes
# on the host; CA certificates for TLS. A base from scripts/build-base-image.sh has them all, and
# then this step needs no network: it only adds the user and its data directory.
RUN set -eu; missing=''; \
    for t in restic:restic zstd:zstd xz:xz-utils bzip2:bzip2; do command -v "${t%%:*}" >/dev/null || missing="$missing ${t#*:}"; done; \
    [ -e /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"; \
    if [ -n "$missing" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $missing && rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --gid 10001 backproof; \
    useradd --uid 10001 --gid backproof --home-dir /var/lib/backproof --no-create-home --shell /usr/sbin/nologin backproof; \
    mkdir -p /var/lib/backproof /etc/backproof; \
    chown backproof:backproof /var/lib/backproof; \
    chmod 0700 /var/lib/backproof
# MALLOC_ARENA_MAX: glibc gives each of Node's threads its own malloc arena, and each keeps what
# it freed; two arenas keep the daemon ~5 MB smaller (docs/deployment.md).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    BACKPROOF_CONFIG=/etc/backproof/backproof.yaml \
    BACKPROOF_DATA_DIR=/var/lib/backproof \
    BACKPROOF_LIVENESS_PORT=9464
COPY app /app
USER backproof
WORKDIR /var/lib/backproof
VOLUME /var/lib/backproof
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["node", "/app/docker-healthcheck.mjs"]
ENTRYPOINT ["node", "/app/bin/backproof.js"]
# The scheduler: verifies on each policy's schedule and alerts. SIGTERM drains running runs for
# daemon.shutdownGrace: give `docker stop -t` at least that long. SIGHUP (docker kill -s HUP) reloads.
CMD ["daemon"]
