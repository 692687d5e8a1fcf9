/**
 * The benchmark harness's cheap parts (table, plot, result files, argument
 * and quantile helpers, record shaping) and tiny runs of two benchmarks on
 * the real services, so their wiring is exercised without measuring anything.
 * No timing is asserted: only that figures exist, are consistent and that
 * every record arrived.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDuration } from '../../bench/support/args.ts';
import clickhouseSink from '../../bench/scenarios/clickhouse-sink.bench.ts';
import { parseLiveLine, threadCpu, threadGroup } from '../../bench/scenarios/embedded.bench.ts';
import { formatNumber, formatRatio, markdownTable } from '../../bench/support/format.ts';
import ingestE2e from '../../bench/scenarios/ingest-e2e.bench.ts';
import {
  createTopic,
  deleteTopics,
  fillTemplate,
  kafkaClient,
  produceGenerated,
  rawConsumer,
  sampleRecords,
  shapeRecord,
  toTemplate,
} from '../../bench/support/load.ts';
import { escapeXml, niceTicks, renderSvg } from '../../bench/support/plot.ts';
import { describeMachine, machineInfo } from '../../bench/support/machine.ts';
import { describeSelfTimes, selfTimes } from '../../bench/support/profile.ts';
import { describeSpeedChange, writeResult } from '../../bench/run.ts';
import { Sampler, quantile, weightedQuantile } from '../../bench/support/sampler.ts';
import { closeBenchStack, uniqueName } from '../../bench/support/stack.ts';
import { toOutput, type BenchContext, type BenchRow, type BenchSeries } from '../../bench/support/types.ts';
import { parseLogEvent } from '../../src/domain/log-event.ts';

const quiet = (args: readonly string[]): BenchContext => ({ args, phase: () => ({ tick() {}, done() {} }), log() {} });

afterAll(() => closeBenchStack());

describe('markdown table', () => {
  const rows: BenchRow[] = [
    { scenario: 'raw | client', metric: 'throughput', value: 80_000, unit: 'logs/s' },
    { scenario: 'pipeline', metric: 'throughput', value: 60_000, unit: 'logs/s', baseline: 80_000, target: '>= 0.8x' },
    { scenario: 'pipeline', metric: 'p99', value: 12.345, unit: 'ms', baseline: 0 },
  ];
  const lines = markdownTable(rows).split('\n');

  it('has a header, an alignment row and one line per row, ratio to the baseline in its own column', () => {
    expect(lines).toHaveLength(2 + rows.length);
    const header = lines[0]!.split('|').map((c) => c.trim());
    expect(header).toContain('ratio to baseline');
    const ratioColumn = header.indexOf('ratio to baseline');
    const cells = (line: string) => line.split(/(?<!\\)\|/).map((c) => c.trim());
    expect(cells(lines[3]!)[ratioColumn]).toBe('0.75x');
    expect(cells(lines[3]!)[header.indexOf('baseline (same run)')]).toBe('80,000');
    expect(cells(lines[3]!)[header.indexOf('target')]).toBe('>= 0.8x');
    // No baseline, or a zero one: no ratio rather than Infinity.
    expect(cells(lines[2]!)[ratioColumn]).toBe('');
    expect(cells(lines[4]!)[ratioColumn]).toBe('');
  });

  it('escapes pipes so a scenario cannot break the table', () => {
    expect(lines[2]).toContain('raw \\| client');
  });

  it('formats numbers by magnitude and ratios to two decimals', () => {
    expect(formatNumber(1_234_567.8, 'logs/s')).toBe('1,234,568');
    expect(formatNumber(123.456, 'ms')).toBe('123.5');
    expect(formatNumber(12.345, 'ms')).toBe('12.35');
    expect(formatNumber(0.99671, 'fraction')).toBe('0.9967');
    expect(formatNumber(Number.NaN, 's')).toBe('NaN');
    expect(formatRatio(3, 2)).toBe('1.50x');
    expect(formatRatio(3, undefined)).toBe('');
  });
});

describe('SVG plot', () => {
  const series: BenchSeries[] = [
    {
      name: 'raw <consumer>',
      panel: 'throughput',
      unit: 'logs/s',
      points: [
        [0, 0],
        [1, 50_000],
        [2, 80_000],
      ],
    },
    {
      name: 'pipeline',
      panel: 'throughput',
      unit: 'logs/s',
      points: [
        [0, 0],
        [1, 40_000],
        [2, 60_000],
        [3, 61_000],
      ],
    },
    {
      name: 'RSS',
      panel: 'RSS',
      unit: 'MiB',
      points: [
        [0, 300],
        [3, 350],
      ],
    },
  ];
  const svg = renderSvg('ingest & soak', series);

  it('draws one panel per panel name and one polyline per series with every point', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<g class="panel"/g)).toHaveLength(2);
    const polylines = [...svg.matchAll(/<polyline[^>]*points="([^"]*)"/g)].map((m) => m[1]!.split(' ').length);
    expect(polylines).toEqual([3, 4, 2]);
  });

  it('escapes text and keeps points inside the plot area', () => {
    expect(svg).toContain('ingest &amp; soak');
    expect(svg).toContain('raw &lt;consumer&gt;');
    expect(svg).not.toContain('raw <consumer>');
    for (const m of svg.matchAll(/points="([^"]*)"/g)) {
      for (const pair of m[1]!.split(' ')) {
        const [x, y] = pair.split(',').map(Number);
        expect(x).toBeGreaterThanOrEqual(0);
        expect(x).toBeLessThanOrEqual(900);
        expect(y).toBeGreaterThanOrEqual(0);
      }
    }
    expect(escapeXml(`a"b'c`)).toBe('a&quot;b&apos;c');
  });

  it('picks round ticks that cover the maximum', () => {
    expect(niceTicks(80_000, 5)).toEqual([0, 20_000, 40_000, 60_000, 80_000]);
    const ticks = niceTicks(61_000, 5);
    expect(ticks[ticks.length - 1]).toBeGreaterThanOrEqual(61_000);
    expect(niceTicks(0)).toEqual([0, 1]);
  });
});

describe('machine details', () => {
  it('include the reference speed of this run, measured, and print it', () => {
    const machine = machineInfo(process.cwd(), 50);
    expect(Number.isInteger(machine.referenceSpeed)).toBe(true);
    expect(machine.referenceSpeed).toBeGreaterThan(0);
    expect(describeMachine(machine).find((l) => l.startsWith('Speed:'))).toContain(
      machine.referenceSpeed.toLocaleString('en-US'),
    );
  });

  it('notes how the reference speed changed around a benchmark', () => {
    expect(describeSpeedChange(330_000, 198_000)).toBe(
      'reference speed before / after this benchmark: 330,000 / 198,000 JSON round trips/s (-40%)',
    );
    expect(describeSpeedChange(200_000, 210_000)).toContain('(+5%)');
    expect(describeSpeedChange(200_000, 200_400)).toContain('(unchanged)');
  });
});

describe('result files', () => {
  it('writes the JSON twice (timestamped and latest) and the SVG beside it when there are series', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-results-'));
    try {
      const base = {
        name: 'demo',
        description: 'demo',
        timestamp: '2026-01-02T03:04:05.678Z',
        args: [],
        notes: ['a note'],
        machine: {
          cpuModel: 'x',
          cores: 2,
          cpuMHz: null,
          totalMemoryBytes: 1,
          node: 'v20',
          v8: '11',
          os: 'Linux',
          arch: 'x64',
          loadAverage: [0, 0, 0],
          gitCommit: null,
          gitDirty: null,
          referenceSpeed: 1,
        },
        services: {
          kafka: '4.1.2',
          chdb: '26',
          clickhouseServer: null,
          postgres: '15',
          pglite: '0.5',
          kafkajs: '2.2.4',
          clickhouseClient: '1.2',
        },
        rows: [{ scenario: 's', metric: 'm', value: 1, unit: 'u' }],
      };
      const files = writeResult(
        {
          ...base,
          series: [
            {
              name: 'n',
              panel: 'p',
              unit: 'u',
              points: [
                [0, 1],
                [1, 2],
              ],
            },
          ],
        },
        dir,
      );
      expect(files.map((f) => path.basename(f)).sort()).toEqual(
        [
          'demo-2026-01-02T03-04-05.678Z.json',
          'demo-2026-01-02T03-04-05.678Z.svg',
          'demo-latest.json',
          'demo-latest.svg',
        ].sort(),
      );
      const json = JSON.parse(await readFile(path.join(dir, 'demo-latest.json'), 'utf8')) as typeof base;
      expect(json.rows).toEqual(base.rows);
      expect(json.services.kafka).toBe('4.1.2');
      expect(json.notes).toEqual(['a note']);

      const plain = await mkdtemp(path.join(os.tmpdir(), 'bench-results-'));
      writeResult({ ...base, series: [] }, plain);
      expect((await readdir(plain)).filter((f) => f.endsWith('.svg'))).toEqual([]);
      await rm(plain, { recursive: true, force: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('helpers', () => {
  it('parses durations', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('45')).toBe(45_000);
    expect(() => parseDuration('soon')).toThrow(/duration/);
  });

  it('takes nearest-rank quantiles, weighted or not', () => {
    expect(quantile([5, 1, 4, 2, 3], 0.5)).toBe(3);
    expect(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99)).toBe(10);
    // 98 records at 10 ms and 2 at 900 ms: p50 10, p99 900.
    expect(
      weightedQuantile(
        [
          [900, 2],
          [10, 98],
        ],
        0.5,
      ),
    ).toBe(10);
    expect(
      weightedQuantile(
        [
          [900, 2],
          [10, 98],
        ],
        0.99,
      ),
    ).toBe(900);
    expect(Number.isNaN(weightedQuantile([], 0.5))).toBe(true);
  });

  it('turns sampled counters into per-second rates', async () => {
    let stored = 0;
    const sampler = new Sampler(60_000, () => ({ stored }));
    await sampler.take();
    stored = 500;
    await new Promise((r) => setTimeout(r, 50));
    await sampler.take();
    const rates = sampler.rate('stored');
    expect(rates).toHaveLength(1);
    const [t, perSecond] = rates[0]!;
    const dt = sampler.samples[1]!.t - sampler.samples[0]!.t;
    expect(t).toBe(sampler.samples[1]!.t);
    expect(perSecond).toBeCloseTo(500 / dt, 6);
    expect(sampler.peakRssBytes).toBeGreaterThan(0);
  });

  it('shapes generated records to the compact form and stamps the send time into a valid log event', async () => {
    const records = await sampleRecords(500, 3, 'full');
    expect(records).toHaveLength(500);
    const full = records.reduce((sum, r) => sum + Buffer.byteLength(r.value), 0) / records.length;
    const compact =
      records.reduce((sum, r) => sum + Buffer.byteLength(shapeRecord(r.value, 'compact')), 0) / records.length;
    expect(compact).toBeLessThan(full);
    expect(compact).toBeGreaterThan(250);
    expect(compact).toBeLessThan(450);

    const sentAt = Date.parse('2026-03-04T05:06:07.089Z');
    const template = toTemplate(shapeRecord(records[0]!.value, 'compact'), records[0]!.key);
    const value = fillTemplate(template, sentAt);
    const event = parseLogEvent(Buffer.from(value), { topic: 't', partition: 0, offset: 0 }, sentAt);
    expect(event.timestamp).toBe(sentAt);
    expect(event.service).toBe(records[0]!.key);
    expect(event.trace_id).toBe('');
    expect(fillTemplate(template, sentAt)).not.toBe(value); // a fresh log_id each time
  });
});

describe('CPU profile summary', () => {
  it('sums self time per function over every node of it, largest first', () => {
    const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 9 });
    const profile = {
      startTime: 0,
      endTime: 10_000,
      nodes: [
        { id: 1, callFrame: frame('(root)', '') },
        { id: 2, callFrame: frame('parseLogEvent', 'file:///work/main/src/domain/log-event.ts') },
        { id: 3, callFrame: frame('parseLogEvent', 'file:///work/main/src/domain/log-event.ts') },
        { id: 4, callFrame: frame('decode', 'file:///work/main/node_modules/kafkajs/src/decoder.js') },
      ],
      // Sample i lasted timeDeltas[i + 1] microseconds.
      samples: [2, 3, 4, 2],
      timeDeltas: [0, 1_000, 2_000, 3_000, 4_000],
    };
    const times = selfTimes(profile);
    expect(times.map((t) => [t.fn, t.where, t.ms])).toEqual([
      ['parseLogEvent', 'src/domain/log-event.ts:10', 7],
      ['decode', 'kafkajs/src/decoder.js:10', 3],
    ]);
    expect(times[0]!.share).toBeCloseTo(0.7, 6);
    expect(describeSelfTimes(times, 1)).toHaveLength(1);
  });
});

describe('benchmarks on the real services, tiny N', () => {
  it('produces generated records and the raw baseline consumer reads every one', async () => {
    const kafka = kafkaClient('bench-test');
    const topic = uniqueName('bench-test-raw');
    await createTopic(kafka, topic, 4);
    const producer = kafka.producer();
    await producer.connect();
    try {
      const produced = await produceGenerated(producer, topic, { count: 3_000, seed: 1, shape: 'compact' });
      expect(produced.records).toBe(3_000);
      const consumed = await rawConsumer(kafka, topic, 3_000);
      expect(consumed.records).toBe(3_000);
      expect(consumed.parsedBytes).toBe(produced.bytes);
      expect(consumed.lastAt).toBeGreaterThanOrEqual(consumed.firstAt);
    } finally {
      await producer.disconnect();
      await deleteTopics(kafka, [topic]);
    }
  }, 120_000);

  it('clickhouse-sink: raw inserts, the sink and the sink with an in-memory ledger each store every row', async () => {
    const output = toOutput(await clickhouseSink.run(quiet(['--rows', '2000', '--batch', '500', '--rounds', '1'])));
    const throughput = output.rows.filter((r) => r.metric === 'throughput');
    expect(throughput.map((r) => r.scenario)).toEqual([
      'raw @clickhouse/client insert -> chdb (baseline)',
      'clickHouseSink, PostgreSQL server ledger -> chdb',
      'clickHouseSink, in-memory ledger -> chdb',
    ]);
    for (const row of throughput) expect(row.value).toBeGreaterThan(0);
    expect(throughput[1]!.baseline).toBe(throughput[0]!.value);
  }, 180_000);

  it('ingest-e2e: baseline, pipeline (every row visible) and the latency run report their figures', async () => {
    const output = toOutput(
      await ingestE2e.run(quiet(['--logs', '3000', '--latency-duration', '8s', '--latency-rate', '300'])),
    );
    const find = (scenario: string, metric: string) =>
      output.rows.find((r) => r.scenario.startsWith(scenario) && r.metric === metric);
    const raw = find('raw kafkajs consumer', 'throughput');
    const pipeline = find('ingest pipeline -> chdb', 'throughput');
    expect(raw?.value).toBeGreaterThan(0);
    expect(pipeline?.baseline).toBe(raw?.value);
    expect(find('ingest pipeline -> chdb', 'CPU per million logs')?.value).toBeGreaterThan(0);
    // The bench notes any difference between records and ClickHouse rows.
    expect(output.notes?.filter((n) => n.includes('rows after'))).toEqual([]);
    const p50 = find('ingest at 300 logs/s', 'p50 end-to-end latency')?.value;
    const p99 = find('ingest at 300 logs/s', 'p99 end-to-end latency')?.value;
    expect(Number.isFinite(p50)).toBe(true);
    expect(p99).toBeGreaterThanOrEqual(p50!);
    expect(output.series?.map((s) => s.panel)).toEqual(expect.arrayContaining(['throughput', 'RSS']));
  }, 240_000);
});

describe('embedded benchmark', () => {
  it("reads npm start's non-TTY live view line, and nothing else", () => {
    const line =
      '[logflow] 29s  generated 843691 (28815/s)  stored 829031  ingest lag 11403  patterns embedded 25  open alerts 1';
    expect(parseLiveLine(line)).toEqual({ seconds: 29, generated: 843_691, stored: 829_031, lag: 11_403 });
    expect(parseLiveLine('stored 1381621 logs (0 dead-lettered), 26 patterns vectorized')).toBeUndefined();
    expect(parseLiveLine('29s  generated 1 (1/s)  stored 1  ingest lag 0')).toBeUndefined();
  });

  it("counts CPU by thread: the main thread, chdb's named threads, and Node's other threads", async () => {
    expect(threadGroup(100, 100, 'node')).toBe('main');
    expect(threadGroup(100, 101, 'node')).toBe('other');
    expect(threadGroup(100, 102, 'libuv-worker')).toBe('other');
    expect(threadGroup(100, 103, 'V8 DefaultWorke')).toBe('other');
    expect(threadGroup(100, 104, 'MergeMutate')).toBe('engine');
    expect(threadGroup(100, 105, 'ThreadPool')).toBe('engine');
    // This process: its main thread is listed as main, with the CPU it has used so far.
    const spin = Date.now() + 50;
    while (Date.now() < spin);
    const threads = await threadCpu(process.pid);
    expect(threads.get(process.pid)).toEqual({ group: 'main', seconds: expect.any(Number) });
    expect(threads.get(process.pid)!.seconds).toBeGreaterThan(0);
    expect(threads.size).toBeGreaterThan(1);
  });
});
