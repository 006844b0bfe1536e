# ficus: build with the full toolchain, run on the slim image with production dependencies only.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Sources only: .dockerignore keeps tests, tools and build output out of the context.
COPY . .
RUN npx tsc -p tsconfig.json

FROM node:24-slim
ENV NODE_ENV=production \
    # Every interface: inside a container, 127.0.0.1 (ficus's default while a demo part is
    # embedded) would be unreachable from outside.
    HOST=0.0.0.0 \
    PORT=8080 \
    ADMIN_PORT=9090 \
    # Inside the container the admin port must be reachable by the orchestrator's probes;
    # set ADMIN_TOKEN when the pod network is shared.
    ADMIN_HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY demo/*.json ./demo/
COPY migrations ./migrations
USER node
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const t = process.env.ADMIN_TOKEN; fetch('http://127.0.0.1:' + (process.env.ADMIN_PORT || 9090) + '/livez', { headers: t ? { authorization: 'Bearer ' + t } : {} }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
# A larger young generation: fewer scavenges under load, lower p99 and RSS (bench/README.md).
CMD ["node", "--max-semi-space-size=8", "dist/proxy/main.js"]
