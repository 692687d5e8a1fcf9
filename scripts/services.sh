#!/usr/bin/env bash
# Local backing services for logflow development, tests and CI.
#
#   scripts/services.sh up      start Kafka (managed by this script) and make
#                               sure PostgreSQL + Redis are running
#   scripts/services.sh down    stop the Kafka broker started by this script
#   scripts/services.sh status  one line per service; exit 0 only if all are up
#
# Kafka   single-node KRaft broker+controller (node.id=1) on PLAINTEXT
#         127.0.0.1:$KAFKA_PORT (controller on 127.0.0.1:$KAFKA_CONTROLLER_PORT).
#         Jars come from Maven Central via scripts/kafka/pom.xml and are cached
#         in $LOGFLOW_SERVICES_DIR/kafka/libs (refetched when the pom changes).
# Chromium
#         Debian's /usr/bin/chromium for the dashboard browser tests; installed
#         via apt by `up` when missing (never removed).
# Postgres / Redis
#         system services: started (installed via apt if missing) only when not
#         already answering on 127.0.0.1:5432 / 127.0.0.1:6379.
#         `down` never stops them; it stops Kafka only.
#
# Environment:
#   KAFKA_PORT              broker port                       (default 9092)
#   KAFKA_CONTROLLER_PORT   KRaft controller port             (default 9093)
#   KAFKA_HEAP_OPTS         broker JVM heap                   (default -Xms256m -Xmx512m)
#   KAFKA_START_TIMEOUT     seconds to wait for the broker    (default 90)
#   LOGFLOW_SERVICES_DIR    state dir (jars, data, logs, pid) (default <repo>/.services)
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
SERVICES_DIR="${LOGFLOW_SERVICES_DIR:-$REPO_ROOT/.services}"
case "$SERVICES_DIR" in /*) ;; *) SERVICES_DIR="$PWD/$SERVICES_DIR" ;; esac

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379

KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LOG4J="$SCRIPT_DIR/kafka/log4j2.properties"
KAFKA_DIR="$SERVICES_DIR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_TOOLS_PROPS="$KAFKA_DIR/tools.properties"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"
KAFKA_STAMP="$KAFKA_LIBS/.pom.sha256"

log()  { printf '[services] %s\n' "$*"; }
warn() { printf '[services] WARN: %s\n' "$*" >&2; }
die()  { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<EOF
usage: $(basename "$0") up|down|status

  up      start Kafka (KRaft, 127.0.0.1:$KAFKA_PORT) and ensure PostgreSQL
          ($PG_HOST:$PG_PORT) and Redis ($REDIS_HOST:$REDIS_PORT) are running
          (installs/starts them if needed). Already-running services are left alone.
  down    stop the Kafka broker started by this script. PostgreSQL and Redis are
          system services and are NOT stopped.
  status  print up/down per service (exit 1 if any is down)

env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_HEAP_OPTS,
     KAFKA_START_TIMEOUT (90), LOGFLOW_SERVICES_DIR (<repo>/.services)
state: $SERVICES_DIR
EOF
}

# ---------------------------------------------------------------- helpers ---

SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); fi
# fd 9 is the services lock (see with_lock); daemons started from here (postgres,
# redis, apt postinst scripts) must not inherit it or they would hold it forever.
as_root() { "${SUDO[@]}" "$@" 9>&-; }

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not available; please install: $*"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# tcp_open HOST PORT -> 0 if something accepts connections
# shellcheck disable=SC2016 # $1/$2 expand in the inner bash
tcp_open() { timeout 2 bash -c ': <>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1; }

tail_log() { # tail_log NAME FILE
  printf '[services] ---- last lines of %s (%s) ----\n' "$1" "$2" >&2
  if [ -r "$2" ]; then tail -n "${3:-60}" "$2" >&2; else printf '(no log file)\n' >&2; fi
  printf '[services] ---- end of %s log ----\n' "$1" >&2
}

fail_service() { # fail_service NAME LOGFILE MESSAGE
  printf '[services] ERROR: %s: %s\n' "$1" "$3" >&2
  tail_log "$1" "$2"
  exit 1
}

ensure_services_dir() {
  mkdir -p "$KAFKA_DIR"
  # Keep the whole state dir out of git, whatever the repo's .gitignore says.
  [ -f "$SERVICES_DIR/.gitignore" ] || printf '*\n' >"$SERVICES_DIR/.gitignore"
}

# ------------------------------------------------------------------ kafka ---

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME/bin/java"; return; fi
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v java
}

kafka_pid() { # prints the pid of our running broker, or fails
  local pid cmdline
  [ -f "$KAFKA_PID" ] || return 1
  pid="$(cat "$KAFKA_PID" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # guard against pid reuse: must be a java running kafka.Kafka with our config
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"kafka.Kafka $KAFKA_PROPS"* ]] || return 1
  echo "$pid"
}

kafka_fetch_libs() {
  local want have=""
  want="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
  [ -f "$KAFKA_STAMP" ] && have="$(cat "$KAFKA_STAMP")"
  if [ "$want" = "$have" ] && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
  log "kafka: fetching jars from Maven Central (pom hash ${want:0:12})"
  local tmp="$KAFKA_LIBS.tmp.$$" mvnlog="$KAFKA_DIR/maven.log"
  rm -rf "$tmp"
  if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvnlog" 2>&1 </dev/null; then
    rm -rf "$tmp"
    fail_service kafka "$mvnlog" "maven could not fetch the Kafka jars"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "kafka: maven produced no kafka_2.13 jar"; }
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  log "kafka: cached $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
}

kafka_cluster_id() {
  local id
  if [ -s "$KAFKA_CLUSTER_ID_FILE" ]; then cat "$KAFKA_CLUSTER_ID_FILE"; return; fi
  if [ -f "$KAFKA_DATA/meta.properties" ]; then # data dir formatted but id file lost
    id="$(sed -n 's/^cluster\.id=//p' "$KAFKA_DATA/meta.properties")"
  fi
  while [ -z "${id:-}" ] || [[ "$id" == -* ]]; do # Kafka Uuid: 16 random bytes, base64url, no padding
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  echo "$id" >"$KAFKA_CLUSTER_ID_FILE"
  echo "$id"
}

kafka_write_config() {
  cat >"$KAFKA_PROPS" <<EOF
# Generated by scripts/services.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER

log.dirs=$KAFKA_DATA
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
EOF
  cat >"$KAFKA_TOOLS_PROPS" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=5000
EOF
}

kafka_format() {
  [ -f "$KAFKA_DATA/meta.properties" ] && return 0
  local cid java
  cid="$(kafka_cluster_id)"
  java="$(java_bin)"
  mkdir -p "$KAFKA_DATA"
  log "kafka: formatting storage (cluster id $cid)"
  if ! "$java" -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
        -Dlogflow.kafka.logfile="$KAFKA_LOG" kafka.tools.StorageTool format \
        -t "$cid" -c "$KAFKA_PROPS" --ignore-formatted >>"$KAFKA_LOG" 2>&1 </dev/null; then
    fail_service kafka "$KAFKA_LOG" "storage format failed"
  fi
}

kafka_metadata_ok() { # a real metadata round-trip through the broker
  local java
  java="$(java_bin)"
  timeout 30 "$java" -Xmx128m -XX:TieredStopAtLevel=1 -cp "$KAFKA_LIBS/*" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    --command-config "$KAFKA_TOOLS_PROPS" --list >/dev/null 2>&1 </dev/null
}

kafka_up() {
  local pid
  if pid="$(kafka_pid)"; then
    if tcp_open 127.0.0.1 "$KAFKA_PORT"; then
      log "kafka: already running (pid $pid, 127.0.0.1:$KAFKA_PORT)"
      if [ -f "$KAFKA_STAMP" ] && [ "$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)" != "$(cat "$KAFKA_STAMP")" ]; then
        warn "kafka: scripts/kafka/pom.xml changed since the broker was started; run 'down' then 'up' to upgrade"
      fi
      return 0
    fi
    log "kafka: process $pid exists but port $KAFKA_PORT is not open yet; waiting"
    kafka_wait "$pid"
    return 0
  fi
  rm -f "$KAFKA_PID"
  if tcp_open 127.0.0.1 "$KAFKA_PORT"; then
    # e.g. a CI service container: use it if it speaks Kafka, refuse otherwise
    kafka_fetch_libs
    kafka_write_config
    if kafka_metadata_ok; then
      log "kafka: a broker not started by this script already answers on 127.0.0.1:$KAFKA_PORT; using it"
      return 0
    fi
    die "kafka: 127.0.0.1:$KAFKA_PORT is in use by a process that is not a Kafka broker: $(ss -Hltnp "sport = :$KAFKA_PORT" 2>/dev/null | grep -o 'users:.*' | head -n1)"
  fi

  kafka_fetch_libs
  kafka_write_config
  [ -f "$KAFKA_LOG" ] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
  kafka_format

  local java
  java="$(java_bin)"
  log "kafka: starting broker (log: $KAFKA_LOG)"
  # setsid: own session, so CI step / terminal teardown does not take it down.
  # The inner shell writes its own pid and execs java (same pid). fd 9 is the
  # lock; it must not leak into the long-running broker.
  # shellcheck disable=SC2086,SC2016
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$KAFKA_PID" \
    "$java" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dlogflow.kafka.logfile="$KAFKA_LOG" \
    -Dkafka.logs.dir="$KAFKA_DIR" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
    </dev/null >>"$KAFKA_LOG" 2>&1 9>&- &
  disown || true
  local _
  for _ in $(seq 1 50); do [ -s "$KAFKA_PID" ] && break; sleep 0.1; done
  pid="$(cat "$KAFKA_PID" 2>/dev/null || true)"
  [ -n "$pid" ] || fail_service kafka "$KAFKA_LOG" "broker process did not start"
  kafka_wait "$pid"
}

kafka_wait() { # kafka_wait PID
  local pid="$1" start=$SECONDS
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$KAFKA_PID"
      fail_service kafka "$KAFKA_LOG" "broker exited during startup"
    fi
    if tcp_open 127.0.0.1 "$KAFKA_PORT" && grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null; then
      break
    fi
    if (( SECONDS - start >= KAFKA_START_TIMEOUT )); then
      kafka_down >/dev/null 2>&1 || true
      fail_service kafka "$KAFKA_LOG" "broker not ready on 127.0.0.1:$KAFKA_PORT after ${KAFKA_START_TIMEOUT}s (stopped it)"
    fi
    sleep 0.5
  done
  until kafka_metadata_ok; do
    if (( SECONDS - start >= KAFKA_START_TIMEOUT )); then
      kafka_down >/dev/null 2>&1 || true
      fail_service kafka "$KAFKA_LOG" "broker listening but metadata requests fail after ${KAFKA_START_TIMEOUT}s (stopped it)"
    fi
    sleep 1
  done
  log "kafka: up (pid $pid, 127.0.0.1:$KAFKA_PORT) in $(( SECONDS - start ))s"
}

kafka_down() {
  local pid _
  if ! pid="$(kafka_pid)"; then
    rm -f "$KAFKA_PID"
    log "kafka: not running"
    return 0
  fi
  log "kafka: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "kafka: did not stop within 30s; killing"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$KAFKA_PID"
  log "kafka: stopped"
}

kafka_status() {
  local pid
  if pid="$(kafka_pid)" && tcp_open 127.0.0.1 "$KAFKA_PORT"; then
    echo "kafka     up    127.0.0.1:$KAFKA_PORT (pid $pid)"
  elif tcp_open 127.0.0.1 "$KAFKA_PORT"; then
    echo "kafka     up    127.0.0.1:$KAFKA_PORT (not started by this script)"
  elif [ -n "${pid:-}" ]; then
    echo "kafka     down  (pid $pid running but port $KAFKA_PORT closed)"; return 1
  else
    echo "kafka     down"; return 1
  fi
}

# --------------------------------------------------------------- postgres ---

pg_ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; }

pg_version() { # newest installed server version
  local d v=""
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$d" ] || continue
    d="${d#/usr/lib/postgresql/}"; d="${d%%/*}"
    if [ -z "$v" ] || [ "$d" -gt "$v" ]; then v="$d"; fi
  done
  echo "$v"
}

pg_cluster() { # prints "version name" of the cluster on $PG_PORT (or empty)
  command -v pg_lsclusters >/dev/null 2>&1 || return 0
  pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }'
}

pg_auth_broken() { # pg_auth_broken HOST -> 0 if the server answers but rejects trust login as postgres
  local out
  command -v psql >/dev/null 2>&1 || return 1
  out="$(PGPASSWORD='' PGCONNECT_TIMEOUT=3 psql -h "$1" -p "$PG_PORT" -U postgres -d postgres -w -Atc 'select 1' 2>&1)" && return 1
  grep -qiE 'pg_hba|authentication|password' <<<"$out"
}

pg_fix_auth() {
  local cluster ver name hba changed=0 host cidr
  cluster="$(pg_cluster)"
  if [ -z "$cluster" ]; then
    warn "postgres: cannot locate the cluster config to enable trust auth"
    return 0
  fi
  read -r ver name <<<"$cluster"
  hba="/etc/postgresql/$ver/$name/pg_hba.conf"
  for host in 127.0.0.1 ::1; do
    pg_auth_broken "$host" || continue
    if [ "$host" = 127.0.0.1 ]; then cidr=127.0.0.1/32; else cidr=::1/128; fi
    log "postgres: enabling trust auth for $cidr in $hba"
    # prepend: pg_hba.conf is first-match
    as_root sed -i "1i host all all $cidr trust  # added by logflow scripts/services.sh" "$hba"
    changed=1
  done
  if [ "$changed" -eq 1 ]; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload
    sleep 1
    pg_auth_broken 127.0.0.1 && die "postgres: trust login as postgres on 127.0.0.1 still fails (see $hba)"
  fi
  return 0
}

pg_up() {
  if pg_ready; then
    log "postgres: already running ($PG_HOST:$PG_PORT)"
    pg_fix_auth
    return 0
  fi
  if [ -z "$(pg_version)" ] || ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
    apt_install postgresql
    pg_ready && { log "postgres: running after install"; pg_fix_auth; return 0; }
  fi
  local cluster ver name
  cluster="$(pg_cluster)"
  if [ -z "$cluster" ]; then
    ver="$(pg_version)"
    [ -n "$ver" ] || die "postgres: no server installed"
    name=main
    if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v n="$name" '$1 == v && $2 == n { f = 1 } END { exit !f }'; then
      name=logflow
    fi
    log "postgres: creating cluster $ver/$name on port $PG_PORT"
    as_root pg_createcluster -p "$PG_PORT" "$ver" "$name" >/dev/null
  else
    read -r ver name <<<"$cluster"
  fi
  log "postgres: starting cluster $ver/$name"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start \
    || fail_service postgres "/var/log/postgresql/postgresql-$ver-$name.log" "pg_ctlcluster start failed"
  local start=$SECONDS
  until pg_ready; do
    (( SECONDS - start >= 60 )) && fail_service postgres "/var/log/postgresql/postgresql-$ver-$name.log" "not ready after 60s"
    sleep 0.5
  done
  pg_fix_auth
  log "postgres: up ($PG_HOST:$PG_PORT)"
}

pg_status() {
  if pg_ready; then echo "postgres  up    $PG_HOST:$PG_PORT"; else echo "postgres  down"; return 1; fi
}

# ------------------------------------------------------------------ redis ---

REDIS_LOG=/var/log/redis/ci.log
redis_ready() {
  command -v redis-cli >/dev/null 2>&1 && [ "$(timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

redis_up() {
  if redis_ready; then
    log "redis: already running ($REDIS_HOST:$REDIS_PORT)"
    return 0
  fi
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server
    redis_ready && { log "redis: running after install"; return 0; }
  fi
  as_root mkdir -p /var/lib/redis /var/log/redis
  log "redis: starting"
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /var/lib/redis --logfile "$REDIS_LOG" \
    || fail_service redis "$REDIS_LOG" "redis-server failed to start"
  local start=$SECONDS
  until redis_ready; do
    (( SECONDS - start >= 30 )) && fail_service redis "$REDIS_LOG" "no PONG after 30s"
    sleep 0.3
  done
  log "redis: up ($REDIS_HOST:$REDIS_PORT)"
}

redis_status() {
  if redis_ready; then echo "redis     up    $REDIS_HOST:$REDIS_PORT"; else echo "redis     down"; return 1; fi
}

# --------------------------------------------------------------- chromium ---

# The dashboard's browser tests drive Debian's Chromium through playwright-core
# (no bundled browser download), so it has to be at this exact path.
CHROMIUM_BIN=/usr/bin/chromium
chromium_up() {
  if [ -x "$CHROMIUM_BIN" ]; then
    log "chromium: already installed ($CHROMIUM_BIN)"
    return 0
  fi
  apt_install chromium
  [ -x "$CHROMIUM_BIN" ] || die "chromium: $CHROMIUM_BIN missing after install"
  log "chromium: installed ($CHROMIUM_BIN)"
}

# ------------------------------------------------------------------- main ---

with_lock() { # serialise concurrent up/down invocations
  ensure_services_dir
  exec 9>"$SERVICES_DIR/.lock"
  flock -w 300 9 || die "could not acquire $SERVICES_DIR/.lock"
}

cmd="${1:-}"
case "$cmd" in
  up)
    with_lock
    pg_up
    redis_up
    chromium_up
    kafka_up
    ;;
  down)
    with_lock
    kafka_down
    log "postgres/redis: left running (system services, not managed by 'down')"
    ;;
  status)
    rc=0
    kafka_status || rc=1
    pg_status || rc=1
    redis_status || rc=1
    exit "$rc"
    ;;
  -h|--help|help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
