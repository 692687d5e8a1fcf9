import { describe, expect, it } from 'vitest';
import { consumerGroup, loadConfig, redactedConfig } from '../../src/core/config.ts';
import { ConfigError } from '../../src/core/errors.ts';

function problemsOf(env: NodeJS.ProcessEnv): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected loadConfig to throw');
}

describe('loadConfig', () => {
  it('gives embedded-mode defaults with no variables set', () => {
    const config = loadConfig({});
    expect(config.kafka.brokers).toBeUndefined();
    expect(config.clickhouse.url).toBeUndefined();
    expect(config.clickhouse.database).toBe('logs_db');
    expect(config.postgres.url).toBeUndefined();
    expect(config.dataDir).toBe('./data');
    expect(config.apiPort).toBe(8080);
    expect(config.topics).toEqual({
      rawLogs: 'raw-logs',
      vectorizationQueue: 'vectorization-queue',
      rawLogsDlq: 'raw-logs-dlq',
      vectorizationQueueDlq: 'vectorization-queue-dlq',
    });
    expect(consumerGroup(config, 'ingest')).toBe('logflow-ingest');
  });

  it('reads server settings and prefixes topics and groups', () => {
    const config = loadConfig({
      LOGFLOW_KAFKA_BROKERS: '127.0.0.1:9092, kafka-2:9092',
      LOGFLOW_POSTGRES_URL: 'postgres://u:secret@db:5432/log_analysis',
      LOGFLOW_TOPIC_PREFIX: 'test-1.',
      LOGFLOW_API_PORT: '9000',
    });
    expect(config.kafka.brokers).toEqual(['127.0.0.1:9092', 'kafka-2:9092']);
    expect(config.apiPort).toBe(9000);
    expect(config.topics.rawLogs).toBe('test-1.raw-logs');
    expect(consumerGroup(config, 'ingest')).toBe('test-1.logflow-ingest');
  });

  it('is frozen', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.topics)).toBe(true);
  });

  it('names the variable of a wrong value in one clear message', () => {
    const problems = problemsOf({ LOGFLOW_API_PORT: 'eighty' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^LOGFLOW_API_PORT: must be a whole number, got "eighty"$/);
  });

  it('names the variable of an out-of-range or malformed value', () => {
    expect(problemsOf({ LOGFLOW_API_PORT: '70000' })).toEqual([
      'LOGFLOW_API_PORT: must be between 0 and 65535, got 70000',
    ]);
    expect(problemsOf({ LOGFLOW_POSTGRES_URL: 'mysql://x' })[0]).toMatch(/^LOGFLOW_POSTGRES_URL: must be a URL/);
    expect(problemsOf({ LOGFLOW_KAFKA_BROKERS: 'localhost' })[0]).toMatch(
      /^LOGFLOW_KAFKA_BROKERS: "localhost" is not host:port/,
    );
    expect(problemsOf({ LOGFLOW_LOG_LEVEL: 'loud' })[0]).toMatch(/^LOGFLOW_LOG_LEVEL: must be one of fatal, error/);
  });

  it('names a missing required value: an API key without its endpoint', () => {
    expect(problemsOf({ LOGFLOW_LLM_API_KEY: 'sk-1', LOGFLOW_LLM_URL: '  ' })).toEqual([
      'LOGFLOW_LLM_URL: required when LOGFLOW_LLM_API_KEY is set',
    ]);
    expect(() => loadConfig({ LOGFLOW_LLM_API_KEY: 'sk-1', LOGFLOW_LLM_URL: 'http://127.0.0.1:9/v1' })).not.toThrow();
  });

  it('rejects a database name that could not be used as an identifier', () => {
    expect(problemsOf({ LOGFLOW_CLICKHOUSE_DATABASE: 'logs; DROP TABLE x' })).toEqual([
      'LOGFLOW_CLICKHOUSE_DATABASE: must be an identifier (letters, digits, underscore; not starting with a digit)',
    ]);
  });

  it('reports every problem at once, unknown LOGFLOW_ variables included', () => {
    const problems = problemsOf({
      LOGFLOW_API_PORT: '-1',
      LOGFLOW_REDIS_URL: 'http://nope',
      LOGFLOW_KAFKA_BROKER: '127.0.0.1:9092',
      OTHER_VARIABLE: 'ignored',
    });
    expect(problems).toHaveLength(3);
    expect(problems.some((p) => p.startsWith('LOGFLOW_KAFKA_BROKER: unknown variable'))).toBe(true);
    expect(problems.some((p) => p.startsWith('LOGFLOW_API_PORT:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('LOGFLOW_REDIS_URL:'))).toBe(true);
  });

  it("accepts the project scripts' own LOGFLOW_ variables (scripts/services.sh's state directory) and ignores them", () => {
    expect(() => loadConfig({ LOGFLOW_SERVICES_DIR: '/srv/logflow-services' })).not.toThrow();
    expect(problemsOf({ LOGFLOW_SERVICES_DIR: '/srv', LOGFLOW_SERVICE_DIR: '/srv' })).toEqual([
      expect.stringMatching(/^LOGFLOW_SERVICE_DIR: unknown variable/),
    ]);
  });

  it('takes an http(s) alert webhook and refuses anything else, naming the variable', () => {
    expect(loadConfig({}).alertWebhookUrl).toBeUndefined();
    expect(loadConfig({ LOGFLOW_ALERT_WEBHOOK_URL: 'http://127.0.0.1:9000/hook' }).alertWebhookUrl).toBe(
      'http://127.0.0.1:9000/hook',
    );
    expect(problemsOf({ LOGFLOW_ALERT_WEBHOOK_URL: 'ftp://example.com/hook' })).toEqual([
      'LOGFLOW_ALERT_WEBHOOK_URL: must be a URL starting with http:// or https://',
    ]);
    expect(problemsOf({ LOGFLOW_ALERT_WEBHOOK_URL: 'hooks.example.com' })).toHaveLength(1);
  });

  it('never shows secrets when redacted for logging', () => {
    const config = loadConfig({
      LOGFLOW_POSTGRES_URL: 'postgres://u:hunter2@db:5432/log_analysis',
      LOGFLOW_LLM_URL: 'http://127.0.0.1:9/v1',
      LOGFLOW_LLM_API_KEY: 'sk-very-secret',
      LOGFLOW_CLICKHOUSE_URL: 'http://127.0.0.1:8123',
      LOGFLOW_CLICKHOUSE_PASSWORD: 'chpass',
      LOGFLOW_ALERT_WEBHOOK_URL: 'https://hooks.example.com/services/T1/B2/webhook-secret',
    });
    const text = JSON.stringify(redactedConfig(config));
    expect(text).not.toContain('webhook-secret');
    expect(text).toContain('https://hooks.example.com/***');
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('sk-very-secret');
    expect(text).not.toContain('chpass');
    expect(text).toContain('db:5432');
  });
});
