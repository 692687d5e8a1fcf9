# One image for every pipeline; the command picks which (see docker-compose.yml).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY web ./web
COPY sql ./sql
COPY scenarios ./scenarios
ENV NODE_ENV=production
ENTRYPOINT ["node", "bin/logflow.js"]
