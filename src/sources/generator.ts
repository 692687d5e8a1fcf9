/**
 * The log generator (the seed's log-generator): realistic logs with every
 * field of the log event (src/domain/log-event.ts) for a set of services and environments, a daily
 * traffic shape, plausible messages and stack traces per service, and a
 * scenario that injects incidents (error spikes, a service going silent, new
 * error types) whose ground truth is reported alongside. Event time is
 * simulated: `speed` event-time seconds pass per wall-clock second
 * (Infinity: as fast as possible), so a test can generate an hour in seconds.
 * Everything derives from the seed: the same options give the same logs.
 */
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { asyncScheduler, Observable, type SchedulerLike } from 'rxjs';
import { z } from 'zod';
import { LogflowError, ErrorCodes } from '../core/errors.ts';

export interface GeneratedLog {
  readonly key: string;
  /** JSON text; invalid on purpose for the share of malformed messages. */
  readonly value: string;
  readonly valid: boolean;
}

export interface GeneratedSecond {
  /** Event time of this second's start, epoch ms. */
  readonly second: number;
  readonly logs: readonly GeneratedLog[];
}

const incidentBase = {
  service: z.string().min(1),
  environment: z.string().min(1).default('production'),
  startMinute: z.number().min(0),
  durationMinutes: z.number().positive(),
};
export const incidentSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('spike'),
      ...incidentBase,
      level: z.enum(['WARN', 'ERROR', 'FATAL']).default('ERROR'),
      multiplier: z.number().min(1).default(10),
    })
    .strict(),
  z.object({ kind: z.literal('silence'), ...incidentBase }).strict(),
  z
    .object({
      kind: z.literal('new_error'),
      ...incidentBase,
      message: z.string().min(1),
      perMinute: z.number().positive().default(60),
    })
    .strict(),
]);
export const scenarioSchema = z
  .object({ name: z.string().default('custom'), incidents: z.array(incidentSchema).max(1_000) })
  .strict();
export type Incident = z.output<typeof incidentSchema>;
export type Scenario = z.output<typeof scenarioSchema>;

export interface GroundTruth {
  readonly kind: Incident['kind'];
  readonly service: string;
  readonly environment: string;
  readonly level: string | null;
  readonly start: string;
  readonly end: string;
  readonly message?: string;
}

export interface GeneratorOptions {
  readonly seed: number;
  /** Events per event-time second at the daily peak. */
  readonly rate: number;
  readonly durationMs: number;
  /** Event time of the first second, epoch ms (rounded down to a second). */
  readonly startTime: number;
  /** Event-time seconds per wall-clock second; Infinity for as fast as possible. */
  readonly speed: number;
  readonly services?: readonly ServiceProfile[];
  readonly environments?: readonly { readonly name: string; readonly weight: number }[];
  /** Share of deliberately malformed messages (DLQ exercise). */
  readonly invalidRate?: number;
  readonly scenario?: Scenario;
  /** Daily traffic shape: quiet nights, busy afternoons. Off: flat traffic (tests). */
  readonly dailyShape?: boolean;
  readonly scheduler?: SchedulerLike;
}

export interface ServiceProfile {
  readonly name: string;
  readonly weight: number;
  readonly logger: string;
  readonly version: string;
  readonly paths: readonly string[];
  readonly info: readonly string[];
  readonly warn: readonly string[];
  readonly errors: readonly {
    readonly type: string;
    readonly code: string;
    readonly message: string;
    readonly frames: readonly string[];
  }[];
}

const LEVEL_SHARES = [
  ['DEBUG', 0.05],
  ['INFO', 0.8],
  ['WARN', 0.1],
  ['ERROR', 0.045],
  ['FATAL', 0.005],
] as const;

export const DEFAULT_SERVICES: readonly ServiceProfile[] = [
  svc(
    'api-gateway',
    3,
    'gateway.router',
    ['/api/v1/orders', '/api/v1/users', '/api/v1/search', '/api/v1/payments'],
    ['Routed {method} {path} to upstream in {ms} ms', 'Request {req} accepted from {ip}'],
    ['Upstream {host} slow: {ms} ms', 'Rate limit at {pct}% for client {user}'],
    [
      err('UpstreamTimeoutError', 'GW504', 'Upstream {host}:8080 timed out after {ms} ms', [
        'Router.forward',
        'HttpClient.send',
      ]),
      err('BadGatewayError', 'GW502', 'Bad gateway from {host}: connection reset', ['Router.forward', 'Socket.read']),
    ],
  ),
  svc(
    'auth-service',
    2,
    'auth.session',
    ['/auth/login', '/auth/refresh', '/auth/logout'],
    ['User {user} logged in from {ip}', 'Session {session} refreshed'],
    ['Password attempt {n} failed for user {user}', 'Token for {user} expires in {n} s'],
    [
      err('TokenValidationError', 'AUTH401', 'JWT signature invalid for session {session}', [
        'JwtVerifier.verify',
        'AuthFilter.apply',
      ]),
      err('LdapConnectionError', 'AUTH503', 'LDAP bind to ldap://{host}:389 failed after {ms} ms', [
        'LdapPool.acquire',
        'Authenticator.bind',
      ]),
    ],
  ),
  svc(
    'user-service',
    2,
    'users.repository',
    ['/users/{id}', '/users/{id}/profile'],
    ['Loaded profile of user {user} in {ms} ms', 'Updated preferences of user {user}'],
    ['Cache miss for user {user}', 'Slow query on users took {ms} ms'],
    [err('UserNotFoundError', 'USR404', 'User {user} not found', ['UserRepository.find', 'UserController.get'])],
  ),
  svc(
    'payment-service',
    2,
    'payments.processor',
    ['/payments', '/payments/{id}/capture'],
    ['Payment {req} authorized for {amount} EUR', 'Captured payment {req}'],
    ['Retrying payment {req} attempt {n}', 'Fraud score {pct} for payment {req}'],
    [
      err('CardDeclinedError', 'PAY402', 'Card declined for payment {req}: insufficient funds', [
        'PaymentProcessor.authorize',
        'CardGateway.charge',
      ]),
      err('DatabaseTimeoutError', 'PAY503', 'Database connection timeout after {ms}ms to db-{n}.internal:5432', [
        'ConnectionPool.acquire',
        'PaymentRepository.save',
      ]),
    ],
  ),
  svc(
    'order-service',
    2,
    'orders.workflow',
    ['/orders', '/orders/{id}', '/orders/{id}/cancel'],
    ['Order {req} created with {n} items', 'Order {req} shipped to {region}'],
    ['Order {req} waiting on inventory for {ms} ms', 'Retrying order event {req}'],
    [
      err(
        'InventoryUnavailableError',
        'ORD409',
        'Inventory reservation failed for order {req}: sku {sku} out of stock',
        ['OrderWorkflow.reserve', 'InventoryClient.reserve'],
      ),
      err(
        'KafkaPublishError',
        'ORD500',
        'Failed to publish order event {req} to topic orders: broker {host} unavailable',
        ['EventPublisher.publish', 'KafkaProducer.send'],
      ),
    ],
  ),
  svc(
    'inventory-service',
    1,
    'inventory.stock',
    ['/stock/{sku}', '/stock/reserve'],
    ['Reserved {n} units of sku {sku}', 'Stock level of sku {sku} is {n}'],
    ['Stock of sku {sku} below threshold: {n}'],
    [
      err('OptimisticLockError', 'INV409', 'Concurrent update of sku {sku} (version {n})', [
        'StockRepository.update',
        'ReservationService.reserve',
      ]),
    ],
  ),
  svc(
    'notification-service',
    1,
    'notify.dispatcher',
    ['/notify/email', '/notify/sms'],
    ['Sent email {req} to user {user}', 'Queued push notification {req}'],
    ['SMTP server {host} answered slowly: {ms} ms'],
    [
      err('SmtpError', 'NTF550', 'SMTP 550 rejected recipient for message {req}', [
        'SmtpClient.send',
        'Dispatcher.deliver',
      ]),
    ],
  ),
  svc(
    'search-service',
    1,
    'search.query',
    ['/search', '/search/suggest'],
    ['Query "{word}" returned {n} hits in {ms} ms', 'Index segment {n} merged'],
    ['Query "{word}" took {ms} ms'],
    [
      err('IndexUnavailableError', 'SRC503', 'Search index shard {n} unavailable on {host}', [
        'ShardRouter.route',
        'SearchClient.query',
      ]),
    ],
  ),
];

function svc(
  name: string,
  weight: number,
  logger: string,
  paths: string[],
  info: string[],
  warn: string[],
  errors: ServiceProfile['errors'],
): ServiceProfile {
  return { name, weight, logger, version: `1.${name.length % 7}.${weight}`, paths, info, warn, errors };
}
function err(type: string, code: string, message: string, frames: string[]) {
  return { type, code, message, frames };
}

const DEFAULT_ENVIRONMENTS = [
  { name: 'production', weight: 0.7 },
  { name: 'staging', weight: 0.2 },
  { name: 'development', weight: 0.1 },
];

const REGIONS = ['eu-west-1', 'us-east-1', 'ap-south-1'];
const WORDS = ['shoes', 'laptop', 'coffee', 'garden chair', 'usb cable', 'winter jacket'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'];
const REGION_FIELDS = REGIONS.map((region) => `,"region":${JSON.stringify(region)}`);
const METHOD_FIELDS = METHODS.map((method) => `,"http_method":${JSON.stringify(method)}`);
const MILLISECONDS = Array.from({ length: 1000 }, (_, ms) => String(ms).padStart(3, '0'));

/** The parts of a log's JSON text that only depend on its service, quoted once. */
interface LogShape {
  readonly profile: ServiceProfile;
  readonly service: string;
  /** One per host number the generator draws (0-5). */
  readonly hosts: readonly string[];
  readonly versionAndLogger: string;
  /** The attributes object up to the pod's random suffix. */
  readonly podPrefix: string;
  readonly errors: readonly {
    readonly type: string;
    readonly message: string;
    readonly notFound: boolean;
    readonly typeAndCode: string;
    /** The stack trace's frame lines, each after a newline. */
    readonly frames: string;
  }[];
}

function logShape(service: ServiceProfile): LogShape {
  const quotedWithoutEnd = (text: string) => JSON.stringify(text).slice(0, -1);
  return {
    profile: service,
    service: `,"service":${JSON.stringify(service.name)}`,
    hosts: Array.from({ length: 6 }, (_, n) => `,"host":${JSON.stringify(`${service.name}-${n}`)}`),
    versionAndLogger: `,"version":${JSON.stringify(service.version)},"logger":${JSON.stringify(service.logger)}`,
    podPrefix: `,"attributes":{"pod":${quotedWithoutEnd(`${service.name}-`)}`,
    errors: service.errors.map((e) => ({
      type: e.type,
      message: e.message,
      notFound: e.code.endsWith('404'),
      typeAndCode: `,"error_type":${JSON.stringify(e.type)},"error_code":${JSON.stringify(e.code)}`,
      frames: e.frames.map((f, i) => `\n    at ${f} (${service.logger.replace('.', '/')}.ts:${40 + i * 17})`).join(''),
    })),
  };
}

/** Traffic relative to the daily peak, by UTC hour: quiet at 4 am, busiest mid-afternoon. */
export function dailyShape(hour: number): number {
  return 0.35 + 0.65 * (0.5 - 0.5 * Math.cos(((hour - 3) / 24) * 2 * Math.PI));
}

export function groundTruth(scenario: Scenario, startTime: number): GroundTruth[] {
  return scenario.incidents.map((i) => ({
    kind: i.kind,
    service: i.service,
    environment: i.environment,
    level: i.kind === 'spike' ? i.level : i.kind === 'new_error' ? 'ERROR' : null,
    start: new Date(startTime + i.startMinute * 60_000).toISOString(),
    end: new Date(startTime + (i.startMinute + i.durationMinutes) * 60_000).toISOString(),
    ...(i.kind === 'new_error' ? { message: i.message } : {}),
  }));
}

export function generateLogs(options: GeneratorOptions): Observable<GeneratedSecond> {
  if (!(options.rate > 0) || !(options.durationMs > 0) || !(options.speed > 0)) {
    throw new LogflowError(ErrorCodes.CONFIG_INVALID, 'generator: rate, duration and speed must be positive', {
      stage: 'config',
    });
  }
  const services = options.services ?? DEFAULT_SERVICES;
  const environments = options.environments ?? DEFAULT_ENVIRONMENTS;
  const scenario = options.scenario ?? { name: 'none', incidents: [] };
  for (const incident of scenario.incidents) {
    if (!services.some((s) => s.name === incident.service)) {
      throw new LogflowError(
        ErrorCodes.CONFIG_INVALID,
        `scenario: unknown service "${incident.service}" (known: ${services.map((s) => s.name).join(', ')})`,
        { stage: 'config' },
      );
    }
  }
  const scheduler = options.scheduler ?? asyncScheduler;
  const start = Math.floor(options.startTime / 1000) * 1000;
  const seconds = Math.ceil(options.durationMs / 1000);
  const rng = xoroshiro128plus(options.seed);
  const random = () => uniformFloat64(rng);
  const totalWeight = services.reduce((a, s) => a + s.weight, 0);
  const envWeight = environments.reduce((a, e) => a + e.weight, 0);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  // The id is drawn whether or not the path has an {id}, so every path takes the same number of draws.
  const randomPath = (service: ServiceProfile): string =>
    pick(service.paths).replace('{id}', String(Math.floor(random() * 100_000)));
  const placeholder = (name: string, service: ServiceProfile): string => {
    switch (name) {
      case 'ms':
        return String(Math.floor(5 + random() * 2_000));
      case 'n':
        return String(Math.floor(random() * 500));
      case 'pct':
        return String(Math.floor(random() * 100));
      case 'user':
        return `user${Math.floor(random() * 50_000)}`;
      case 'session':
        return randomHex(random, 16);
      case 'req':
        return `req-${randomHex(random, 12)}`;
      case 'ip':
        return `10.${Math.floor(random() * 255)}.${Math.floor(random() * 255)}.${Math.floor(random() * 255)}`;
      case 'host':
        return `${service.name}-${Math.floor(random() * 12)}.internal`;
      case 'amount':
        return (random() * 500).toFixed(2);
      case 'sku':
        return `SKU-${Math.floor(random() * 90_000 + 10_000)}`;
      case 'region':
        return pick(REGIONS);
      case 'word':
        return pick(WORDS);
      case 'method':
        return pick(METHODS);
      case 'path':
        return randomPath(service);
      default:
        return name;
    }
  };
  // A template split once into literal text (even places) and placeholder names (odd places), as String#replace would
  // find them; filling it then draws the same random numbers in the same order without a regular expression per log.
  const templates = new Map<string, readonly string[]>();
  const fill = (template: string, service: ServiceProfile): string => {
    let parts = templates.get(template);
    if (parts === undefined) {
      parts = template.split(/\{(\w+)\}/);
      templates.set(template, parts);
    }
    let text = parts[0]!;
    for (let i = 1; i < parts.length; i += 2) text += placeholder(parts[i]!, service) + parts[i + 1]!;
    return text;
  };

  const active = (second: number, kind: Incident['kind'], service: string, environment: string) =>
    scenario.incidents.filter(
      (i) =>
        i.kind === kind &&
        i.service === service &&
        i.environment === environment &&
        second >= start + i.startMinute * 60_000 &&
        second < start + (i.startMinute + i.durationMinutes) * 60_000,
    );

  const shapes = services.map(logShape);
  const environmentFields = new Map(environments.map((e) => [e.name, `,"environment":${JSON.stringify(e.name)}`]));
  // Every log of a second shares the timestamp's text up to the milliseconds.
  let isoSecond = Number.NaN;
  let isoPrefix = '';

  /**
   * The log's JSON text written directly: the same text, key order and random draws (in the same order) as
   * JSON.stringify of the object with these fields, at a fraction of its cost (the generator shares the cores with
   * the pipelines it feeds in `npm start`). Text that can come from configuration is quoted by JSON.stringify.
   */
  const makeLog = (
    second: number,
    shape: LogShape,
    environmentField: string,
    level: string,
    messageOverride?: string,
  ): GeneratedLog => {
    const service = shape.profile;
    if (second !== isoSecond) {
      isoSecond = second;
      isoPrefix = new Date(second).toISOString().slice(0, -4);
    }
    const timestamp = `${isoPrefix}${MILLISECONDS[Math.floor(random() * 1000)]!}Z`;
    const common =
      `{"log_id":"${seededUuid(random)}","timestamp":"${timestamp}"${shape.service}` +
      `${environmentField},"level":${JSON.stringify(level)}` +
      `${shape.hosts[Math.floor(random() * 6)]!}${pick(REGION_FIELDS)}${shape.versionAndLogger}` +
      `,"trace_id":"${randomHex(random, 32)}","span_id":"${randomHex(random, 16)}"` +
      `,"request_id":"req-${randomHex(random, 12)}","user_id":"user${Math.floor(random() * 50_000)}"` +
      `,"session_id":"${randomHex(random, 16)}"${pick(METHOD_FIELDS)}` +
      `,"http_path":${JSON.stringify(randomPath(service))}` +
      `,"duration_ms":${Math.round(random() * 800 * 100) / 100}${shape.podPrefix}${randomHex(random, 5)}"}`;
    if (level === 'ERROR' || level === 'FATAL') {
      const e = pick(shape.errors);
      const message = messageOverride ?? fill(e.message, service);
      const status = e.notFound ? 404 : 500 + Math.floor(random() * 4);
      const stack = JSON.stringify(`${e.type}: ${message}${e.frames}`);
      const value = `${common},"message":${JSON.stringify(message)}${e.typeAndCode},"http_status":${status},"stack_trace":${stack}}`;
      return { key: service.name, value: flattened(value), valid: true };
    }
    const message = messageOverride ?? fill(pick(level === 'WARN' ? service.warn : service.info), service);
    const value = `${common},"message":${JSON.stringify(message)},"http_status":200}`;
    return { key: service.name, value: flattened(value), valid: true };
  };

  const malformed = (second: number, service: ServiceProfile): GeneratedLog => {
    const kinds = [
      () => '{"timestamp": "not closed',
      () =>
        JSON.stringify({
          timestamp: new Date(second).toISOString(),
          service: service.name,
          level: 'LOUD',
          message: 'unknown level',
        }),
      () => JSON.stringify({ timestamp: new Date(second).toISOString(), level: 'INFO', message: 'no service' }),
      () => JSON.stringify({ timestamp: 'yesterday', service: service.name, level: 'INFO', message: 'bad time' }),
      () => JSON.stringify([1, 2, 3]),
    ];
    return { key: service.name, value: pick(kinds)(), valid: false };
  };

  const generateSecond = (index: number): GeneratedSecond => {
    const second = start + index * 1000;
    const traffic = options.dailyShape === false ? 1 : dailyShape(new Date(second).getUTCHours());
    const logs: GeneratedLog[] = [];
    for (const serviceShape of shapes) {
      const service = serviceShape.profile;
      for (const env of environments) {
        if (active(second, 'silence', service.name, env.name).length > 0) continue;
        const environmentField = environmentFields.get(env.name)!;
        const expected = options.rate * traffic * (service.weight / totalWeight) * (env.weight / envWeight);
        for (const [level, share] of LEVEL_SHARES) {
          let mean = expected * share;
          for (const spike of active(second, 'spike', service.name, env.name))
            if (spike.kind === 'spike' && spike.level === level) mean *= spike.multiplier;
          // Poisson-like counts without storing state: floor plus a Bernoulli remainder.
          const count = Math.floor(mean) + (random() < mean - Math.floor(mean) ? 1 : 0);
          for (let i = 0; i < count; i++) {
            logs.push(
              random() < (options.invalidRate ?? 0)
                ? malformed(second, service)
                : makeLog(second, serviceShape, environmentField, level),
            );
          }
        }
        for (const incident of active(second, 'new_error', service.name, env.name)) {
          if (incident.kind !== 'new_error') continue;
          const mean = incident.perMinute / 60;
          const count = Math.floor(mean) + (random() < mean - Math.floor(mean) ? 1 : 0);
          for (let i = 0; i < count; i++)
            logs.push(makeLog(second, serviceShape, environmentField, 'ERROR', fill(incident.message, service)));
        }
      }
    }
    return { second, logs };
  };

  return new Observable<GeneratedSecond>((subscriber) => {
    let index = 0;
    const began = scheduler.now();
    const step = (): void => {
      // At most one event-time second per step when paced; in bursts when unpaced, yielding between them.
      const burstEnd = Number.isFinite(options.speed) ? index + 1 : index + 10;
      while (index < seconds && index < burstEnd && !subscriber.closed) {
        subscriber.next(generateSecond(index));
        index += 1;
      }
      if (index >= seconds) {
        subscriber.complete();
        return;
      }
      const due = Number.isFinite(options.speed) ? began + (index * 1000) / options.speed : scheduler.now();
      action = scheduler.schedule(step, Math.max(0, due - scheduler.now()));
    };
    let action = scheduler.schedule(step, 0);
    return () => action.unsubscribe();
  });
}

/**
 * V8 keeps a string built by concatenation as a tree of its pieces until a character of it is read, and a second's logs
 * wait whole before they are packed: their trees, about forty pieces a log, made the young generation's collections
 * copy and promote them, and this generator spent more time in garbage collection than it saved by not building an
 * object per log. Reading one character makes V8 flatten the string at once, so the pieces die young.
 */
function flattened(text: string): string {
  return text.charCodeAt(0) >= 0 ? text : '';
}

const HEX_BYTES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * 8 hex digits per draw, through a byte table: a trace id costs 4 draws, not 32 (Number#toString(16) of wide values was
 * slower still).
 */
function randomHex(random: () => number, length: number): string {
  let s = '';
  while (s.length < length) {
    const bits = (random() * 0x1_0000_0000) >>> 0;
    s +=
      HEX_BYTES[bits >>> 24]! +
      HEX_BYTES[(bits >>> 16) & 255]! +
      HEX_BYTES[(bits >>> 8) & 255]! +
      HEX_BYTES[bits & 255]!;
  }
  return s.length === length ? s : s.slice(0, length);
}

/** A version-4-shaped UUID from the seeded generator, so log ids repeat with the seed too. */
function seededUuid(random: () => number): string {
  const variant = '89ab'[Math.floor(random() * 4)]!;
  return `${randomHex(random, 8)}-${randomHex(random, 4)}-4${randomHex(random, 3)}-${variant}${randomHex(random, 3)}-${randomHex(random, 12)}`;
}
