/**
 * The nightly analysis of one day (src/pipelines/nightly.ts runs it for each
 * analysis job), as steps the pipeline chains: read the day, write its error
 * patterns and catalog entries, record its statistical anomalies as alerts,
 * analyse it (LLM, or the statistical report when there is none or its
 * answer is unusable), write the report and complete the job. Every write is
 * idempotent per date, so a re-run replaces rather than adds.
 */
import type {
  AnalysisAnomaly,
  AnalysisInput,
  AnalysisReport,
  Analyst,
  CatalogContextEntry,
  NeighbourContext,
} from '../clients/llm.ts';
import { createStatisticalAnalyst } from '../clients/llm.ts';
import type { Engines } from '../clients/engines.ts';
import { ErrorCodes, LogflowError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { truncateText } from '../core/text.ts';
import { DEFAULT_DETECTOR_SETTINGS, score, type Baseline } from '../domain/anomaly.ts';
import { DailyAnalytics, dayRange, type DayPattern, type DayRange, type LastDayView } from '../stores/analytics.ts';
import { loadBaselines } from '../stores/baselines.ts';
import { ErrorPatternStore } from '../stores/error-patterns.ts';
import type { AnalysisJob } from '../stores/postgres/analysis-jobs.ts';
import type { NotificationTargets } from '../stores/postgres/alert-notifications.ts';
import type { PoolRepositories } from '../stores/postgres/index.ts';
import { raiseAlert } from './alert-transitions.ts';
import { AlertAnalyzer, TokenBudget, type AlertAnalysisResult } from './alert-analysis.ts';
import { CatalogDescriber, type CatalogDescriptionResult, type NeighbourFinder } from './catalog-descriptions.ts';

const TOP_PATTERNS = 50;
/** Catalog entries looked up for the report's prompt: the day's most frequent patterns. */
const CONTEXT_CATALOG_PATTERNS = 20;
/** Patterns whose nearest past patterns the report's prompt shows, and how many of each. */
const CONTEXT_NEIGHBOUR_PATTERNS = 5;
const NEIGHBOURS_PER_PATTERN = 3;
const MAX_STATISTICAL_ALERTS = 20;

type Statistics = Awaited<ReturnType<DailyAnalytics['statistics']>>;

/** One job's day as it goes through the steps; each step adds what it found. */
export interface DayAnalysis {
  readonly job: AnalysisJob;
  readonly startedAt: number;
  readonly logger: Logger;
  readonly range: DayRange;
  readonly statistics: Statistics;
  readonly patterns: DayPattern[];
  readonly anomalies?: AnalysisAnomaly[];
  /** The run's LLM tokens: alert analyses and catalog entries stop asking once it is spent. */
  readonly budget: TokenBudget;
  readonly alertAnalysis?: AlertAnalysisResult;
  readonly catalogDescriptions?: CatalogDescriptionResult;
  readonly context?: AnalysisInput['context'];
  /** The seed's last-24-hours views, read only for a run about today or yesterday (see `DailyAnalytics.lastDay`). */
  readonly lastDay?: LastDayView;
  readonly analysis?: {
    readonly report: AnalysisReport;
    readonly producedBy: 'llm' | 'statistical';
    readonly model: string | null;
    readonly tokensUsed: number;
    readonly llmError?: string;
  };
}

export interface NightlyResult {
  readonly jobId: number;
  readonly date: string;
  readonly producedBy: 'llm' | 'statistical';
  readonly llmError?: string;
}

export interface DailyAnalysisOptions {
  /** LLM tokens a run may spend on alert analyses and catalog entries (the day's report is always written). */
  readonly tokenBudget: number;
  /** LLM requests at once for alerts and catalog entries. */
  readonly concurrency: number;
  /** Nearest past patterns for the prompts; none without. */
  readonly neighbours?: NeighbourFinder;
  /** Where the statistical alerts' webhooks go; none without. */
  readonly notifications?: NotificationTargets;
}

const NO_RECEIVER: NotificationTargets = { defaultUrl: null, dashboardUrl: null };

export const DEFAULT_DAILY_ANALYSIS_OPTIONS: DailyAnalysisOptions = { tokenBudget: 200_000, concurrency: 4 };

export class DailyAnalysis {
  readonly #analytics: DailyAnalytics;
  readonly #patterns: ErrorPatternStore;

  constructor(
    private readonly engines: Engines,
    private readonly repositories: PoolRepositories,
    private readonly analyst: Analyst,
    private readonly logger: Logger,
    private readonly options: DailyAnalysisOptions = DEFAULT_DAILY_ANALYSIS_OPTIONS,
  ) {
    this.#analytics = new DailyAnalytics(engines.clickhouse);
    this.#patterns = new ErrorPatternStore(engines.clickhouse);
  }

  /** The day's statistics and error patterns. */
  async read(job: AnalysisJob): Promise<DayAnalysis> {
    const startedAt = Date.now();
    const range = dayRange(job.targetDate);
    const statistics = await this.#analytics.statistics(range);
    const patterns = await this.#analytics.errorPatterns(range);
    const logger = this.logger.child({ jobId: job.id, date: job.targetDate });
    const budget = new TokenBudget(this.options.tokenBudget);
    // The views' 24 hours overlap the analysed day only when that day is today or yesterday by the wall clock.
    const recent = job.targetDate >= new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const lastDay = recent ? await this.#analytics.lastDay() : undefined;
    return {
      job,
      startedAt,
      logger,
      range,
      statistics,
      patterns,
      budget,
      ...(lastDay === undefined ? {} : { lastDay }),
    };
  }

  /**
   * error_patterns with all-time counts (so a re-run writes the same numbers), embedding state kept; error_catalog
   * entries for new patterns, never overwriting an engineer's edits.
   */
  async writePatterns(day: DayAnalysis): Promise<DayAnalysis> {
    const { patterns, job } = day;
    const hashes = patterns.map((p) => p.errorHash);
    const [existing, totals] = await Promise.all([this.#patterns.get(hashes), this.#analytics.totals(hashes)]);
    await this.#patterns.upsert(
      patterns.map((p) => {
        const prior = existing.get(p.errorHash);
        const total = totals.get(p.errorHash);
        return {
          error_hash: p.errorHash,
          template: p.template,
          sample_message: prior?.sample_message ?? truncateText(p.sampleMessage, 4_096),
          services: [...new Set([...(prior?.services ?? []), ...p.services])].sort(),
          level: p.level,
          first_seen: total?.first ?? p.firstSeen,
          last_seen: total?.last ?? p.lastSeen,
          occurrence_count: String(total?.count ?? p.occurrences),
          has_embedding: prior?.has_embedding ?? 0,
          qdrant_point_id: prior?.qdrant_point_id ?? '',
        };
      }),
    );
    for (const p of patterns) {
      const total = totals.get(p.errorHash);
      await this.repositories.errorCatalog.upsertAutoCreated({
        errorHash: p.errorHash,
        template: p.template,
        title: truncateText(p.template, 120),
        description: `Seen ${p.occurrences} times on ${job.targetDate} in ${p.services.join(', ')}.`,
        severity: p.level === 'FATAL' ? 'critical' : 'medium',
        services: p.services,
        occurrenceCount: total?.count ?? p.occurrences,
        firstSeen: new Date(`${(total?.first ?? p.firstSeen).replace(' ', 'T')}Z`),
        lastSeen: new Date(`${(total?.last ?? p.lastSeen).replace(' ', 'T')}Z`),
      });
    }
    return day;
  }

  /** The day's statistical anomalies, the strongest as alerts. */
  async recordAnomalies(day: DayAnalysis): Promise<DayAnalysis> {
    const anomalies = await statisticalAnomalies(this.#analytics, this.engines, day.range);
    for (const a of anomalies.slice(0, MAX_STATISTICAL_ALERTS))
      await recordStatisticalAlert(this.repositories, day.job.targetDate, a, this.options.notifications ?? NO_RECEIVER);
    return { ...day, anomalies };
  }

  /**
   * Every open alert without an analysis gets one (src/sinks/alert-analysis.ts), whatever the job's date: an
   * on-demand job also covers the alerts opened since the last run.
   */
  async analyseAlerts(day: DayAnalysis): Promise<DayAnalysis> {
    const analyzer = new AlertAnalyzer(this.#analytics, this.repositories, this.analyst, day.logger, {
      budget: day.budget,
      concurrency: this.options.concurrency,
      ...(this.options.neighbours === undefined ? {} : { neighbours: this.options.neighbours }),
    });
    return { ...day, alertAnalysis: await analyzer.run() };
  }

  /** LLM-written catalog entries for the day's top patterns that still hold the statistical text. */
  async describePatterns(day: DayAnalysis): Promise<DayAnalysis> {
    const describer = new CatalogDescriber(this.repositories.errorCatalog, this.analyst, day.logger, {
      budget: day.budget,
      concurrency: this.options.concurrency,
      ...(this.options.neighbours === undefined ? {} : { neighbours: this.options.neighbours }),
    });
    return { ...day, catalogDescriptions: await describer.run(day.job.targetDate, day.patterns) };
  }

  /**
   * What the report's prompt shows beside the day's data: the catalog entries of the top patterns (as the catalog
   * step left them) and the nearest past patterns of the most frequent ones. Only asked for when an LLM will read it.
   */
  async gatherContext(day: DayAnalysis): Promise<DayAnalysis> {
    if (this.analyst.producedBy !== 'llm') return day;
    const catalog: CatalogContextEntry[] = [];
    for (const p of day.patterns.slice(0, CONTEXT_CATALOG_PATTERNS)) {
      const entry = await this.repositories.errorCatalog.get(p.errorHash);
      if (entry === null) continue;
      const { title, description, solution, editedByHuman } = entry;
      catalog.push({ errorHash: p.errorHash, title, description, solution, editedByHuman });
    }
    const neighbours: NeighbourContext[] = [];
    const find = this.options.neighbours;
    if (find !== undefined) {
      for (const p of day.patterns.slice(0, CONTEXT_NEIGHBOUR_PATTERNS)) {
        for (const n of await find(p, NEIGHBOURS_PER_PATTERN)) neighbours.push({ nearErrorHash: p.errorHash, ...n });
      }
    }
    return { ...day, context: { catalog, neighbours } };
  }

  /** The LLM's analysis; one that fails validation is recorded and never used, and the day gets the statistical one. */
  async analyse(day: DayAnalysis): Promise<DayAnalysis> {
    const input = this.#input(day);
    try {
      const analysed = await this.analyst.analyze(input);
      return {
        ...day,
        analysis: {
          report: analysed.report,
          producedBy: this.analyst.producedBy,
          model: analysed.model,
          tokensUsed: analysed.tokensUsed,
        },
      };
    } catch (error) {
      if (!(error instanceof LogflowError) || (error.code !== ErrorCodes.LLM_OUTPUT_INVALID && !error.retriable))
        throw error;
      const tokensUsed = Number((error.details as { tokensUsed?: unknown } | undefined)?.tokensUsed ?? 0) || 0;
      day.logger.warn({ err: error }, 'LLM analysis unusable; writing the statistical report instead');
      const fallback = await createStatisticalAnalyst().analyze(input);
      return {
        ...day,
        analysis: {
          report: fallback.report,
          producedBy: 'statistical',
          model: null,
          tokensUsed,
          llmError: `${error.code}: ${error.message}`,
        },
      };
    }
  }

  /** One nightly_reports row per date (a re-run replaces it), then the job completed. */
  async writeReport(day: DayAnalysis): Promise<NightlyResult> {
    const { job, statistics, patterns, analysis } = day;
    const anomalies = day.anomalies ?? [];
    if (analysis === undefined) throw new Error(`nightly: job ${job.id} has no analysis to write`);
    const { report, producedBy, model, llmError } = analysis;
    // The job's tokens are the report's and every alert and catalog request's.
    const tokensUsed = analysis.tokensUsed + day.budget.spent;
    const alerts = day.alertAnalysis;
    await this.repositories.nightlyReports.upsertForDate({
      reportDate: job.targetDate,
      jobId: job.id,
      producedBy,
      modelUsed: model,
      summary: report.summary,
      keyIssues: report.keyIssues,
      probableCauses: report.probableCauses,
      recommendations: report.recommendations,
      patternSeverity: report.patternSeverity,
      statistics: JSON.parse(
        JSON.stringify({
          ...this.#input(day).statistics,
          ...(day.lastDay === undefined ? {} : { last24Hours: day.lastDay }),
        }),
      ) as never,
      totalLogs: statistics.totalLogs,
      totalErrors: statistics.totalErrors,
      errorRate: statistics.errorRate,
      uniquePatterns: statistics.uniquePatterns,
      anomaliesDetected: anomalies.length,
      tokensUsed,
    });
    await this.repositories.analysisJobs.complete(job.id, {
      tokensUsed,
      modelUsed: model,
      processingTimeMs: Date.now() - day.startedAt,
      result: {
        producedBy,
        patterns: patterns.length,
        anomalies: anomalies.length,
        ...(llmError === undefined ? {} : { llmError }),
        ...(alerts === undefined ? {} : { alertAnalysis: { ...alerts } }),
        ...(day.catalogDescriptions === undefined ? {} : { catalogDescriptions: { ...day.catalogDescriptions } }),
        tokenBudget: { limit: day.budget.limit, spent: day.budget.spent, exhausted: day.budget.exhausted },
      },
    });
    day.logger.info(
      { producedBy, patterns: patterns.length, anomalies: anomalies.length, tokensUsed },
      'nightly analysis written',
    );
    return { jobId: job.id, date: job.targetDate, producedBy, ...(llmError === undefined ? {} : { llmError }) };
  }

  /** Marks the job failed with why; the pipeline goes on with the next job. */
  async fail(job: AnalysisJob, error: unknown): Promise<void> {
    this.logger.child({ jobId: job.id, date: job.targetDate }).error({ err: error }, 'nightly analysis failed');
    await this.repositories.analysisJobs
      .fail(job.id, error instanceof Error ? error.message : String(error))
      .catch(() => undefined);
  }

  #input(day: DayAnalysis) {
    const anomalies = day.anomalies ?? [];
    return {
      date: day.job.targetDate,
      statistics: { ...day.statistics, anomaliesDetected: anomalies.length },
      topPatterns: day.patterns.slice(0, TOP_PATTERNS),
      anomalies,
      ...(day.context === undefined ? {} : { context: day.context }),
    };
  }
}

/** Hours of the day whose count is anomalous against the per-minute baseline scaled to an hour. */
async function statisticalAnomalies(
  analytics: DailyAnalytics,
  engines: Engines,
  range: { from: number; to: number },
): Promise<AnalysisAnomaly[]> {
  const [hours, baselines] = await Promise.all([analytics.hourlyCounts(range), loadBaselines(engines.clickhouse)]);
  const bySlot = new Map(
    baselines.map((b) => [`${b.service}|${b.environment}|${b.level}|${b.hourOfDay}|${b.dayOfWeek}`, b]),
  );
  const found: AnalysisAnomaly[] = [];
  for (const h of hours) {
    const at = new Date(h.hour);
    const day = ((at.getUTCDay() + 6) % 7) + 1;
    const b = bySlot.get(`${h.service}|${h.environment}|${h.level}|${at.getUTCHours()}|${day}`);
    if (b === undefined) continue;
    // Sixty independent minutes: the mean scales by 60, the spread by sqrt(60).
    const hourly: Baseline = {
      ...b,
      mean: b.mean * 60,
      stddev: b.stddev * Math.sqrt(60),
      median: b.median * 60,
      p95: b.p95 * 60,
      p99: b.p99 * 60,
      upperThreshold: b.upperThreshold * 60,
      lowerThreshold: b.lowerThreshold * 60,
    };
    const s = score(h.count, hourly, DEFAULT_DETECTOR_SETTINGS);
    if (s.anomalous && s.kind !== null) {
      found.push({
        service: h.service,
        environment: h.environment,
        level: h.level,
        kind: s.kind,
        score: s.score,
        windowStart: at.toISOString(),
      });
    }
  }
  return found.sort((a, b) => Math.abs(b.score) - Math.abs(a.score));
}

async function recordStatisticalAlert(
  repositories: PoolRepositories,
  date: string,
  a: AnalysisAnomaly,
  notifications: NotificationTargets,
): Promise<void> {
  const windowEnd = new Date(Date.parse(a.windowStart) + 3_600_000);
  await raiseAlert(
    repositories,
    {
      dedupKey: `statistical:${date}:${a.kind}:${a.service}:${a.environment}:${a.level}`,
      rule: `statistical_${a.kind}`,
      alertType: 'statistical',
      status: 'open',
      severity: 'medium',
      service: a.service,
      environment: a.environment,
      level: a.level,
      score: a.score,
      windowStart: new Date(a.windowStart),
      windowEnd,
      description: `Nightly analysis of ${date}: ${a.service} (${a.environment}) ${a.level} ${a.kind} in the hour from ${a.windowStart}`,
      // The hour it happened in, so a replayed day's alert is the same transition and is announced once.
      openedAt: windowEnd,
    },
    notifications,
  );
}
