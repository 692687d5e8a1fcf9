# One image for every pipeline; the command picks which (see docker-compose.yml).
# Node 24: the LTS line CI also runs the tests on (scripts/ci-node24.sh).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: `prepare` would build before src/ is copied; the build is its own step below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
RUN node bin/build.js

# The image runs the compiled dist/ only: no src/ and no tsx (a dev dependency).
FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY bin ./bin
COPY --from=build /app/dist ./dist
COPY web ./web
COPY sql ./sql
COPY scenarios ./scenarios
ENV NODE_ENV=production
ENTRYPOINT ["node", "bin/logflow.js"]
