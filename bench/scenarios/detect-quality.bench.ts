/**
 * Detection quality on the generator's traffic: per-minute counts of each
 * default service's INFO and ERROR logs in production, shaped as
 * src/sources/generator.ts shapes them (its services' weights, level shares
 * and daily curve) but drawn as Poisson counts (the generator's own
 * floor-plus-remainder counts hardly vary, which would flatter any detector),
 * with one service bursty (heavy-tailed bursts, as a batch job or a retry
 * storm gives). Four weeks of history, then one scored week, replayed through
 * the detector's own code (`detectSeries`, src/app/commands/detect-series.ts:
 * the baseline statistics, scoreWindows and alertLifecycle of the detect
 * pipeline) series by series.
 *
 * Two runs over the same services and seeds:
 * - normal week: no incident; every alert opening is false;
 * - incidents: per calm service, in the scored week, ERROR spikes (x4 for 10
 *   minutes), slow ERROR ramps (to x4 over 2 hours), INFO drops (to a third
 *   for 30 minutes) and silences (no logs for 15 minutes), at seeded times
 *   apart from each other. An incident is found when its series opens an
 *   alert of the expected kind between its start and 5 minutes after its
 *   end; any other opening is false.
 *
 * Not covered here: a new error pattern (novelty is judged by vectorize on
 * embeddings, not by counts; bench/scenarios/detect-novelty.bench.ts measures
 * it) and a silent service alone on its partition
 * (test/pipelines/detect-idle.test.ts runs that end to end). The comparison
 * with a rolling Gaussian is bench/scenarios/detect-vs-gaussian.bench.ts.
 *
 * Args: --rate N (logs/s over all services and environments, default 100),
 * --seed N (default 1).
 */
import { detectSeries, type SeriesRow } from '../../src/app/commands/detect-series.ts';
import { DEFAULT_SERVICES, dailyShape } from '../../src/sources/generator.ts';
import { normal, poisson, seededRandom } from '../../test/support/synthetic-series.ts';
import { numberArg } from '../support/args.ts';
import type { Benchmark, BenchContext, BenchOutput, BenchRow } from '../support/types.ts';

const MINUTE = 60_000;
const WEEK_MINUTES = 7 * 24 * 60;
const HISTORY_WEEKS = 4;
/** Production's share of traffic and the two levels' shares, as the generator has them. */
const PRODUCTION_SHARE = 0.7;
const LEVEL_SHARE = { INFO: 0.8, ERROR: 0.045 } as const;
const BURSTY_SERVICE = 'search-service';
const TOLERANCE_MS = 5 * MINUTE;

type Level = keyof typeof LEVEL_SHARE;
type IncidentKind = 'spike' | 'ramp' | 'drop' | 'silence';

interface Incident {
  readonly kind: IncidentKind;
  readonly service: string;
  /** Minutes into the scored week. */
  readonly startMinute: number;
  readonly minutes: number;
}

/** Which series an incident shows in, and the alert kinds that count as finding it. */
const FOUND_AS: Record<IncidentKind, { readonly level: Level; readonly kinds: readonly string[] }> = {
  spike: { level: 'ERROR', kinds: ['spike'] },
  ramp: { level: 'ERROR', kinds: ['spike'] },
  drop: { level: 'INFO', kinds: ['drop'] },
  silence: { level: 'INFO', kinds: ['silence', 'drop'] },
};

const INCIDENT_PLAN: ReadonlyArray<{ readonly kind: IncidentKind; readonly minutes: number; readonly count: number }> =
  [
    { kind: 'spike', minutes: 10, count: 2 },
    { kind: 'ramp', minutes: 120, count: 1 },
    { kind: 'drop', minutes: 30, count: 2 },
    { kind: 'silence', minutes: 15, count: 1 },
  ];

/** The multiplier an incident applies to a level's expected count at a minute of the scored week. */
function incidentFactor(incidents: readonly Incident[], level: Level, minute: number): number {
  let factor = 1;
  for (const incident of incidents) {
    const into = minute - incident.startMinute;
    if (into < 0 || into >= incident.minutes) continue;
    if (incident.kind === 'silence') return 0;
    if (incident.kind === 'spike' && level === 'ERROR') factor *= 4;
    if (incident.kind === 'ramp' && level === 'ERROR') factor *= 1 + (3 * (into + 1)) / incident.minutes;
    if (incident.kind === 'drop' && level === 'INFO') factor /= 3;
  }
  return factor;
}

/** Incidents of a service at seeded times, each in its own 12-hour block of the scored week so none overlap. */
function planIncidents(service: string, random: () => number): Incident[] {
  const blocks = Array.from({ length: 14 }, (_, i) => i);
  const incidents: Incident[] = [];
  for (const { kind, minutes, count } of INCIDENT_PLAN) {
    for (let n = 0; n < count; n++) {
      const block = blocks.splice(Math.floor(random() * blocks.length), 1)[0]!;
      const startMinute = block * 720 + 60 + Math.floor(random() * (720 - 120 - minutes));
      incidents.push({ kind, service, startMinute, minutes });
    }
  }
  return incidents;
}

function seriesRows(
  seed: number,
  from: number,
  meanAt: (minute: number, start: number) => number,
  bursty: boolean,
): SeriesRow[] {
  const random = seededRandom(seed);
  const rows: SeriesRow[] = [];
  let burstLeft = 0;
  let burst = 1;
  const total = (HISTORY_WEEKS + 1) * WEEK_MINUTES;
  for (let i = 0; i < total; i++) {
    const start = from + i * MINUTE;
    let mean = meanAt(i - HISTORY_WEEKS * WEEK_MINUTES, start);
    if (bursty) {
      if (burstLeft === 0 && random() < 0.02) {
        burstLeft = 1 + Math.floor(-Math.log(1 - random()) * 3);
        burst = 1 + Math.exp(normal(random) * 1.1);
      }
      if (burstLeft > 0) {
        burstLeft -= 1;
        mean *= burst;
      }
    }
    rows.push({ line: i + 2, timestamp: new Date(start).toISOString(), start, value: poisson(random, mean) });
  }
  return rows;
}

interface RunResult {
  readonly found: Map<IncidentKind, { found: number; total: number }>;
  readonly falseByService: Map<string, number>;
}

async function run(
  ctx: BenchContext,
  label: string,
  rate: number,
  seed: number,
  withIncidents: boolean,
): Promise<RunResult> {
  const totalWeight = DEFAULT_SERVICES.reduce((sum, service) => sum + service.weight, 0);
  // A Monday, so the scored week starts on one too.
  const from = Date.UTC(2026, 0, 5);
  const scoredFrom = from + HISTORY_WEEKS * WEEK_MINUTES * MINUTE;
  const found = new Map<IncidentKind, { found: number; total: number }>();
  const falseByService = new Map<string, number>();
  const phase = ctx.phase(label, DEFAULT_SERVICES.length);
  const planRandom = seededRandom(seed * 7919);
  for (const [s, service] of DEFAULT_SERVICES.entries()) {
    const bursty = service.name === BURSTY_SERVICE;
    const incidents = withIncidents && !bursty ? planIncidents(service.name, planRandom) : [];
    let falseAlerts = 0;
    for (const level of ['INFO', 'ERROR'] as const) {
      const perMinute = rate * 60 * PRODUCTION_SHARE * (service.weight / totalWeight) * LEVEL_SHARE[level];
      const rows = seriesRows(
        seed * 1000 + s * 10 + (level === 'INFO' ? 1 : 2),
        from,
        (minute, start) =>
          perMinute *
          dailyShape(new Date(start).getUTCHours()) *
          (minute >= 0 ? incidentFactor(incidents, level, minute) : 1),
        bursty,
      );
      const openings = await detectSeries(rows, MINUTE, { trainRows: HISTORY_WEEKS * WEEK_MINUTES });
      const matched = new Set<Incident>();
      for (const opening of openings) {
        const at = Date.parse(opening.timestamp);
        const incident = incidents.find((candidate) => {
          const start = scoredFrom + candidate.startMinute * MINUTE;
          const expected = FOUND_AS[candidate.kind];
          return (
            expected.level === level &&
            expected.kinds.includes(opening.kind) &&
            at >= start &&
            at <= start + candidate.minutes * MINUTE + TOLERANCE_MS
          );
        });
        if (incident === undefined) {
          // An opening inside any incident of the service, of another kind or level, is a consequence of it, not false.
          const during = incidents.some((candidate) => {
            const start = scoredFrom + candidate.startMinute * MINUTE;
            return at >= start && at <= start + candidate.minutes * MINUTE + TOLERANCE_MS;
          });
          if (!during) falseAlerts += 1;
        } else matched.add(incident);
      }
      for (const incident of incidents) {
        if (FOUND_AS[incident.kind].level !== level) continue;
        const tally = found.get(incident.kind) ?? { found: 0, total: 0 };
        tally.total += 1;
        if (matched.has(incident)) tally.found += 1;
        found.set(incident.kind, tally);
      }
    }
    falseByService.set(service.name, falseAlerts);
    phase.tick(s + 1);
  }
  phase.done();
  return { found, falseByService };
}

const benchmark: Benchmark = {
  name: 'detect-quality',
  description:
    "the detector on a month of history and a scored week of the generator's services: recall per incident kind, false alerts per service-day",
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const rate = numberArg(ctx.args, 'rate', 100);
    const seed = Math.floor(numberArg(ctx.args, 'seed', 1));
    const rows: BenchRow[] = [];
    const normalWeek = await run(ctx, 'normal week', rate, seed, false);
    const incidents = await run(ctx, 'week with incidents', rate, seed, true);

    for (const [name, falseAlerts] of normalWeek.falseByService) {
      rows.push({
        scenario: `normal week, ${name}${name === BURSTY_SERVICE ? ' (bursty)' : ''}`,
        metric: 'false alerts per service-day',
        value: falseAlerts / 7,
        unit: 'alerts',
        target: '<= 1',
      });
    }
    for (const [kind, { found, total }] of incidents.found) {
      rows.push({
        scenario: `incidents: ${kind} (${total} over ${DEFAULT_SERVICES.length - 1} calm services)`,
        metric: 'recall',
        value: found / total,
        unit: 'share',
        target: '>= 0.95',
      });
    }
    let falseDuringIncidents = 0;
    for (const falseAlerts of incidents.falseByService.values()) falseDuringIncidents += falseAlerts;
    rows.push({
      scenario: 'week with incidents, all services',
      metric: 'false alerts per service-day (openings matching no incident)',
      value: falseDuringIncidents / (7 * DEFAULT_SERVICES.length),
      unit: 'alerts',
      target: '<= 1',
    });
    return {
      rows,
      notes: [
        `rate ${rate} logs/s over all services and environments (production ${PRODUCTION_SHARE * 100}%), seed ${seed}; series: INFO and ERROR per service, 1-minute windows, ${HISTORY_WEEKS} weeks of history then 1 scored week`,
        `counts are Poisson around the generator's expected count; ${BURSTY_SERVICE} also has heavy-tailed bursts (about 1 minute in 50, x1 + lognormal(0, 1.1), a few minutes long) and no incidents`,
        'an incident is found by an opening of the expected kind (spike for spikes and ramps, drop for drops, silence or drop for silences) on its series from its start to 5 minutes after its end',
      ],
    };
  },
};

export default benchmark;
