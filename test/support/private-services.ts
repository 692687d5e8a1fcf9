/**
 * Private PostgreSQL, Redis and Kafka instances that one test owns, so it can
 * stop, kill and restart them (outage tests) without touching the shared
 * services other tests use. Each lives in its own temp dir on free ports and
 * is started from the same binaries the shared ones use: PostgreSQL from
 * /usr/lib/postgresql/<v>/bin, redis-server from PATH, and Kafka from the
 * jars scripts/services.sh caches in .services/kafka/libs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function processAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export interface PrivateService {
  readonly port: number;
  readonly url: string;
  /** Graceful stop; the data stays, so start() brings the same state back. */
  stop(): Promise<void>;
  /** SIGKILL: as a crash or a pulled plug. */
  kill(): Promise<void>;
  start(): Promise<void>;
  running(): boolean;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

// ------------------------------------------------------------ PostgreSQL ---

function postgresBin(): string {
  const versions = readdirSync('/usr/lib/postgresql')
    .filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`))
    .sort((a, b) => Number(b) - Number(a));
  if (versions[0] === undefined) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql/*/bin');
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

/** initdb refuses to run as root: run the server as the postgres user then. */
function asServerUser(command: string, args: readonly string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, [...args]];
}

function run(command: string, args: readonly string[], what: string): string {
  const [cmd, argv] = asServerUser(command, args);
  const result = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0)
    throw new Error(`${what} failed (${result.status ?? result.signal}): ${result.stderr}${result.stdout}`);
  return result.stdout;
}

export async function startPrivatePostgres(): Promise<PrivateService> {
  const bin = postgresBin();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-pg-'));
  const data = path.join(dir, 'data');
  await chmod(dir, 0o777);
  if (process.getuid?.() === 0) spawnSync('chown', ['postgres:postgres', dir]);
  const port = await freePort();
  run(`${bin}/initdb`, ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], 'initdb');
  const logFile = path.join(dir, 'postgres.log');
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100 -c shared_buffers=32MB`;
  let postmasterPid: number | undefined;
  const ready = () => spawnSync(`${bin}/pg_isready`, ['-q', '-h', '127.0.0.1', '-p', String(port)]).status === 0;

  const service: PrivateService = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      run(`${bin}/pg_ctl`, ['-D', data, '-l', logFile, '-o', options, '-w', '-t', '60', 'start'], 'pg_ctl start');
      await waitUntil(async () => ready(), `private PostgreSQL on ${port}`, 60_000);
      postmasterPid = Number((await readFile(path.join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    },
    async stop() {
      if (!processAlive(postmasterPid)) return;
      run(`${bin}/pg_ctl`, ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop'], 'pg_ctl stop');
      postmasterPid = undefined;
    },
    async kill() {
      if (postmasterPid === undefined) return;
      // The whole server: the postmaster and its backends.
      spawnSync('pkill', ['-KILL', '-P', String(postmasterPid)]);
      process.kill(postmasterPid, 'SIGKILL');
      await waitUntil(async () => !processAlive(postmasterPid), 'private PostgreSQL to die', 10_000);
      postmasterPid = undefined;
      await rm(path.join(data, 'postmaster.pid'), { force: true });
    },
    running: () => processAlive(postmasterPid),
    async destroy() {
      await service.stop().catch(() => service.kill());
      await rm(dir, { recursive: true, force: true });
    },
  };
  await service.start();
  return service;
}

// ----------------------------------------------------------------- Redis ---

export async function startPrivateRedis(): Promise<PrivateService> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const ping = () =>
    spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8', timeout: 3_000 }).stdout?.trim() ===
    'PONG';

  const service: PrivateService = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
        {
          stdio: 'ignore',
        },
      );
      await waitUntil(async () => ping(), `private Redis on ${port}`, 30_000);
    },
    async stop() {
      if (child === undefined || !processAlive(child.pid)) return;
      child.kill('SIGTERM');
      if (!(await waitForExit(child, 10_000))) child.kill('SIGKILL');
      child = undefined;
    },
    async kill() {
      if (child === undefined) return;
      child.kill('SIGKILL');
      await waitForExit(child, 10_000);
      child = undefined;
    },
    running: () => child !== undefined && processAlive(child.pid),
    async destroy() {
      await service.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await service.start();
  return service;
}

// ----------------------------------------------------------------- Kafka ---

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const KAFKA_LIBS = path.join(process.env.LOGFLOW_SERVICES_DIR ?? path.join(REPO_ROOT, '.services'), 'kafka', 'libs');
const KAFKA_LOG4J = path.join(REPO_ROOT, 'scripts', 'kafka', 'log4j2.properties');

export interface PrivateKafka extends PrivateService {
  readonly brokers: string[];
  readonly logFile: string;
}

/**
 * A single-node KRaft broker like the shared one (same properties as
 * scripts/services.sh writes), on its own ports and data dir. Needs the jars
 * `npm run services:up` caches.
 */
export async function startPrivateKafka(): Promise<PrivateKafka> {
  if (!existsSync(KAFKA_LIBS)) throw new Error(`no Kafka jars in ${KAFKA_LIBS}: run \`npm run services:up\` first`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-kafka-'));
  const data = path.join(dir, 'data');
  await mkdir(data);
  const port = await freePort();
  const controllerPort = await freePort();
  const props = path.join(dir, 'server.properties');
  const logFile = path.join(dir, 'kafka.log');
  await writeFile(
    props,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      'inter.broker.listener.name=PLAINTEXT',
      'controller.listener.names=CONTROLLER',
      `log.dirs=${data}`,
      'num.partitions=1',
      'default.replication.factor=1',
      'auto.create.topics.enable=true',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=1',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'transaction.state.log.num.partitions=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
      'num.network.threads=2',
      'num.io.threads=2',
      'num.recovery.threads.per.data.dir=1',
      // Bad-input tests send 10 MB messages: the broker must take them so the pipeline can reject them.
      'message.max.bytes=16777216',
      'replica.fetch.max.bytes=16777216',
      '',
    ].join('\n'),
  );
  const java = 'java';
  const jvm = ['-Xms128m', '-Xmx384m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Djava.awt.headless=true'];
  const classpath = `${KAFKA_LIBS}/*`;
  // A Kafka Uuid (16 random bytes, base64url) that does not start with "-", which the storage tool would read as an
  // option: one id in 64 did, and failed the reliability run with "argument --cluster-id/-t: expected one argument"
  // (scripts/services.sh avoids it the same way).
  let clusterId = randomBytes(16).toString('base64url');
  while (clusterId.startsWith('-')) clusterId = randomBytes(16).toString('base64url');
  const format = spawnSync(
    java,
    [
      ...jvm,
      '-cp',
      classpath,
      `-Dlog4j2.configurationFile=${KAFKA_LOG4J}`,
      `-Dlogflow.kafka.logfile=${logFile}`,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      clusterId,
      '-c',
      props,
      '--ignore-formatted',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (format.status !== 0) throw new Error(`kafka storage format failed: ${format.stderr}${format.stdout}`);
  let child: ChildProcess | undefined;
  let starts = 0;

  const service: PrivateKafka = {
    port,
    url: `127.0.0.1:${port}`,
    brokers: [`127.0.0.1:${port}`],
    logFile,
    async start() {
      starts += 1;
      const marker = `Kafka Server started`;
      const before = existsSync(logFile) ? (await readFile(logFile, 'utf8')).split(marker).length : 1;
      child = spawn(
        java,
        [
          ...jvm,
          `-Dlog4j2.configurationFile=${KAFKA_LOG4J}`,
          `-Dlogflow.kafka.logfile=${logFile}`,
          `-Dkafka.logs.dir=${dir}`,
          '-cp',
          classpath,
          'kafka.Kafka',
          props,
        ],
        { stdio: 'ignore' },
      );
      const started = child;
      await waitUntil(
        async () => {
          if (started.exitCode !== null)
            throw new Error(`private Kafka exited during start #${starts} (log: ${logFile})`);
          if (!(await portOpen(port))) return false;
          const log = await readFile(logFile, 'utf8').catch(() => '');
          return log.split(marker).length > before;
        },
        `private Kafka on ${port}`,
        120_000,
      );
    },
    async stop() {
      if (child === undefined || child.exitCode !== null) return;
      child.kill('SIGTERM');
      if (!(await waitForExit(child, 60_000))) {
        child.kill('SIGKILL');
        await waitForExit(child, 10_000);
      }
      child = undefined;
    },
    async kill() {
      if (child === undefined) return;
      child.kill('SIGKILL');
      await waitForExit(child, 10_000);
      child = undefined;
    },
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    async destroy() {
      await service.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await service.start();
  return service;
}
