/**
 * nightly on real PostgreSQL and chdb, with the local OpenAI-compatible
 * server standing in for the LLM: the job's lifecycle, error_patterns,
 * catalog entries, the report (replaced by a re-run), and an invalid LLM
 * answer recorded and never used; analyses of open alerts within the token
 * budget, with a statistical fallback for invalid answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { nightly } from '../../src/pipelines/nightly.ts';
import { STATISTICAL_ANALYSIS_PREFIX } from '../../src/sinks/alert-analysis.ts';
import type { NewAnomalyAlert } from '../../src/stores/postgres/anomaly-alerts.ts';
import {
  defaultChatContent,
  defaultReportContent,
  startOpenAIServer,
  type ChatRequest,
} from '../support/openai-server.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';

describe('nightly', () => {
  let h: Harness;
  let llm: Awaited<ReturnType<typeof startOpenAIServer>>;
  const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  // The half hour of traffic: on `day`, and inside the seed views' last 24 hours (from the start of the hour 24 hours
  // ago, sql/clickhouse/005_views.sql) with two hours to spare, so the last-24-hours test always has logs to count.
  const HOUR = 3_600_000;
  const trafficStart = new Date(
    Math.min(Math.floor((Date.now() - 24 * HOUR) / HOUR) * HOUR + 2 * HOUR, Date.parse(`${day}T23:00:00Z`)),
  );
  const trafficEnd = new Date(trafficStart.getTime() + HOUR / 2);

  beforeAll(async () => {
    llm = await startOpenAIServer({ apiKey: 'sk-test' });
    h = await createHarness({
      LOGFLOW_LLM_URL: llm.url,
      LOGFLOW_LLM_API_KEY: 'sk-test',
      LOGFLOW_LLM_MODEL: 'test-model',
    });
    const generated = h.start(generate, {
      rate: '20',
      duration: '30m',
      speed: 'max',
      seed: '5',
      flat: true,
      start: trafficStart.toISOString(),
    });
    await generated.done;
    const ingesting = h.start(ingest, {});
    const total = (await h.metrics.recordsOut.get()).values.find((v) => v.labels.pipeline === 'generate')?.value ?? 0;
    await h.waitFor(async () => (await h.count('SELECT count() FROM logs')) >= total, 'ingest');
    await ingesting.stop();
  });
  afterAll(async () => {
    await h.close();
    await llm.close();
  });

  it('records the job, upserts patterns and catalog entries, and writes one LLM report per date that a re-run replaces', async () => {
    // A past pattern near the day's most frequent one, documented by an engineer: the prompts must carry it.
    const repositories0 = await h.resources.repositories();
    const engines = await h.resources.engines();
    const [top] = await (
      await engines.clickhouse.query({
        query: `SELECT toString(error_hash) AS hash, any(template) AS tpl FROM logs WHERE level IN ('ERROR', 'FATAL')
                GROUP BY error_hash ORDER BY count() DESC, hash LIMIT 1`,
        format: 'JSONEachRow',
      })
    ).json<{ hash: string; tpl: string }>();
    const pastTemplate = `${top!.tpl} again`;
    const [vector] = await h.resources.embedder().embed([pastTemplate]);
    const store = await h.resources.vectorStore();
    await store.ensureCollection(vector!.length);
    await store.upsert([
      {
        errorHash: '42',
        vector: [...vector!],
        payload: {
          error_hash: '42',
          template: pastTemplate,
          service: 'legacy-billing',
          level: 'ERROR',
          first_seen: '2026-01-01T00:00:00.000Z',
          model: h.resources.embedder().model,
        },
      },
    ]);
    await repositories0.errorCatalog.createByEngineer({
      errorHash: '42',
      template: pastTemplate,
      title: 'Past: the same failure last winter',
      solution: 'Restart the billing bridge',
    });

    const first = h.start(nightly, { date: day });
    expect(await first.done).toEqual({ status: 'completed' });
    const repositories = await h.resources.repositories();
    const report = await repositories.nightlyReports.getByDate(day);
    expect(report).toMatchObject({ producedBy: 'llm', modelUsed: 'test-model' });
    expect(report!.tokensUsed).toBeGreaterThan(0);
    expect(report!.totalLogs).toBe(await h.count('SELECT count() FROM logs'));
    expect(report!.totalErrors).toBe(await h.count("SELECT count() FROM logs WHERE level IN ('ERROR', 'FATAL')"));

    const [job] = await repositories.analysisJobs.list({ limit: 10 });
    expect(job).toMatchObject({ status: 'completed', jobType: 'on_demand', targetDate: day, modelUsed: 'test-model' });
    expect(job!.processingTimeMs).toBeGreaterThanOrEqual(0);
    expect(job!.tokensUsed).toBe(report!.tokensUsed);

    const errorPatterns = await h.count("SELECT uniqExact(error_hash) FROM logs WHERE level IN ('ERROR', 'FATAL')");
    expect(await h.count('SELECT count() FROM error_patterns FINAL')).toBe(errorPatterns);
    expect(await h.count('SELECT sum(occurrence_count) FROM error_patterns FINAL')).toBe(report!.totalErrors);
    const catalog = await repositories.errorCatalog.list({ limit: 1_000 });
    expect(catalog.filter((c) => c.autoCreated)).toHaveLength(errorPatterns);
    // The analysis described the new patterns with the LLM: title, description with the probable cause, the fix.
    const described = await repositories.errorCatalog.get(top!.hash);
    expect(described).toMatchObject({
      title: `Test title for pattern ${top!.hash}`,
      solution: `Test fix for pattern ${top!.hash}.`,
      severity: 'high',
      editedByHuman: false,
    });
    expect(described!.description).toContain('Probable cause: The test server cannot know.');
    expect(described!.tags).toContain('analysis:llm');
    // Its prompt carried the nearest past pattern from the vector store, with that pattern's catalog entry.
    const catalogAsk = llm.requests.find((r) => {
      const body = r.body as ChatRequest;
      return schemaName(body) === 'catalog_entry' && JSON.stringify(body).includes(`pattern ${top!.hash}.`);
    });
    expect(dataOf(catalogAsk!).similarPastPatterns).toContainEqual(
      expect.objectContaining({
        errorHash: '42',
        template: pastTemplate,
        title: 'Past: the same failure last winter',
        solution: 'Restart the billing bridge',
      }),
    );

    // An engineer's edit survives a re-run, and the re-run replaces the report rather than adding one.
    const edited = catalog.find((c) => c.autoCreated && c.errorHash !== top!.hash)!;
    const editedDescription = (await repositories.errorCatalog.get(edited.errorHash))!.description;
    await repositories.errorCatalog.updateByEngineer(edited.errorHash, {
      title: 'Known: payment gateway flake',
      solution: 'Retry with backoff',
    });
    const second = h.start(nightly, { date: day });
    expect(await second.done).toEqual({ status: 'completed' });
    const replaced = await repositories.nightlyReports.getByDate(day);
    expect(replaced!.id).toBe(report!.id);
    expect(replaced!.jobId).not.toBe(report!.jobId);
    expect((await repositories.nightlyReports.list({ limit: 10 })).length).toBe(1);
    expect(await h.count('SELECT sum(occurrence_count) FROM error_patterns FINAL')).toBe(report!.totalErrors);
    expect(await repositories.errorCatalog.get(edited.errorHash)).toMatchObject({
      title: 'Known: payment gateway flake',
      solution: 'Retry with backoff',
      description: editedDescription,
      editedByHuman: true,
    });
    // An entry the LLM described keeps its text through the re-run's statistical refresh, and is not asked again.
    expect(await repositories.errorCatalog.get(top!.hash)).toMatchObject({ title: described!.title });
    const catalogAsks = llm.requests.filter(
      (r) => r.endpoint === 'chat' && schemaName(r.body as ChatRequest) === 'catalog_entry',
    );
    expect(catalogAsks).toHaveLength(errorPatterns);
    // The prompt carried the log text as delimited data.
    const chat = llm.requests.filter(
      (r) => r.endpoint === 'chat' && schemaName(r.body as ChatRequest) === 'nightly_report',
    );
    expect(chat.length).toBe(2);
    expect(JSON.stringify(chat[0]!.body)).toContain('<logs>');
    // The report's prompt carried the top patterns' catalog entries and their nearest past patterns.
    const reportData = dataOf(chat[0]!) as {
      catalogEntries: { errorHash: string; title: string; solution: string | null }[];
      similarPastPatterns: { nearErrorHash: string; errorHash: string; title: string | null }[];
    };
    expect(reportData.catalogEntries).toContainEqual(
      expect.objectContaining({ errorHash: top!.hash, title: described!.title, solution: described!.solution }),
    );
    expect(reportData.similarPastPatterns).toContainEqual(
      expect.objectContaining({
        nearErrorHash: top!.hash,
        errorHash: '42',
        title: 'Past: the same failure last winter',
      }),
    );
  });

  it('rejects and records an LLM answer that fails validation, and writes the statistical report instead', async () => {
    llm.chatContent = JSON.stringify({ summary: 'x', keyIssues: 'not-an-array' });
    const run = h.start(nightly, { date: day });
    expect(await run.done).toEqual({ status: 'completed' });
    llm.chatContent = undefined;
    const repositories = await h.resources.repositories();
    const report = await repositories.nightlyReports.getByDate(day);
    expect(report).toMatchObject({ producedBy: 'statistical', modelUsed: null });
    expect(report!.summary).toMatch(/without an LLM/i);
    const [job] = await repositories.analysisJobs.list({ limit: 1 });
    expect(job!.status).toBe('completed');
    expect(String(job!.result?.llmError)).toMatch(/^LLM_OUTPUT_INVALID/);
  });

  /** The alert a chat request is about (its user message names it), or null for other questions. */
  const alertOf = (request: { body: unknown }): number | null => {
    const match = /Anomaly alert (\d+)\./.exec(JSON.stringify(request.body));
    return match === null ? null : Number(match[1]);
  };
  const schemaName = (request: ChatRequest): string =>
    String((request.response_format as { json_schema?: { name?: string } } | undefined)?.json_schema?.name);
  /** Answers alert questions with `alert`, everything else as the server does by default. */
  const answering = (alert: (request: ChatRequest) => string) => (request: ChatRequest) =>
    schemaName(request) === 'alert_analysis' ? alert(request) : defaultReportContent(request);

  const analysing = answering((request) =>
    JSON.stringify({
      analysis: `LLM analysis of alert ${alertOf({ body: request })}.`,
      suggestedActions: ['Roll back the last deploy.', 'Page the owning team.'],
    }),
  );
  /** The JSON data between the markers of a recorded chat request. */
  const dataOf = (request: { body: unknown }): Record<string, unknown> => {
    const user = (request.body as ChatRequest).messages.find((m) => m.role === 'user')!.content;
    return JSON.parse(/<logs>\n([\s\S]*)\n<\/logs>/.exec(user)![1]!) as Record<string, unknown>;
  };

  let seq = 0;
  async function openAlert(patch: Partial<NewAnomalyAlert> = {}): Promise<number> {
    const repositories = await h.resources.repositories();
    const engines = await h.resources.engines();
    const [row] = await (
      await engines.clickhouse.query({
        query: "SELECT service FROM logs WHERE level = 'ERROR' GROUP BY service ORDER BY count() DESC LIMIT 1",
        format: 'JSONEachRow',
      })
    ).json<{ service: string }>();
    const alert = await repositories.anomalyAlerts.insert({
      dedupKey: `test:${++seq}`,
      rule: 'error_spike',
      alertType: 'spike',
      status: 'open',
      service: row!.service,
      environment: 'production',
      level: 'ERROR',
      score: 6.5,
      observed: 40,
      expected: 4,
      anomalousWindows: 3,
      windowStart: trafficStart,
      windowEnd: trafficEnd,
      ...patch,
    });
    return alert.id;
  }

  it('writes an analysis and suggested actions for each open alert without one, with catalog entries in the prompt', async () => {
    const repositories = await h.resources.repositories();
    const fresh = await openAlert();
    const silence = await openAlert({ alertType: 'silence', rule: 'silence', observed: 0 });
    const done = await openAlert({ llmAnalysis: 'Written by an engineer.', suggestedActions: ['Keep'] });
    const pending = await openAlert({ status: 'pending' });
    // A novel-pattern alert on the pattern the vector store holds a past neighbour of (the first test put it there).
    const [past] = await (await h.resources.vectorStore()).search(
      [...(await h.resources.embedder().embed(['x']))[0]!],
      {
        limit: 1,
        minScore: -1,
      },
    );
    const [nearHash] = (await repositories.errorCatalog.list({ limit: 1_000 }))
      .filter((c) => c.autoCreated && c.template === past!.payload.template.replace(/ again$/, ''))
      .map((c) => c.errorHash);
    const novel = await openAlert({ alertType: 'novel_pattern', rule: 'novel_pattern', errorHash: nearHash! });
    llm.chatContent = analysing;
    const before = llm.requests.length;
    const run = h.start(nightly, { date: day });
    expect(await run.done).toEqual({ status: 'completed' });
    llm.chatContent = undefined;

    for (const id of [fresh, silence, novel]) {
      expect(await repositories.anomalyAlerts.get(id)).toMatchObject({
        llmAnalysis: `LLM analysis of alert ${id}.`,
        suggestedActions: ['Roll back the last deploy.', 'Page the owning team.'],
      });
    }
    expect(await repositories.anomalyAlerts.get(done)).toMatchObject({ llmAnalysis: 'Written by an engineer.' });
    expect(await repositories.anomalyAlerts.get(pending)).toMatchObject({ llmAnalysis: null, suggestedActions: [] });
    const [job] = await repositories.analysisJobs.list({ limit: 1 });
    expect(job!.result).toMatchObject({ alertAnalysis: { byLlm: 3, statistical: 0, leftForBudget: 0 } });
    // The novel pattern's alert carried its nearest past pattern and that pattern's catalog entry.
    const novelAsk = llm.requests.slice(before).find((r) => alertOf(r) === novel);
    expect(dataOf(novelAsk!).similarPastPatterns).toContainEqual(
      expect.objectContaining({ errorHash: '42', title: 'Past: the same failure last winter' }),
    );

    // The alert's prompt carried the service's patterns of the window and their catalog entries.
    const asked = llm.requests.slice(before).filter((r) => alertOf(r) === fresh);
    expect(asked).toHaveLength(1);
    const data = dataOf(asked[0]!) as {
      serviceTopErrorPatterns: { errorHash: string }[];
      catalogEntries: { errorHash: string; title: string }[];
    };
    const top = data.serviceTopErrorPatterns[0];
    expect(top).toBeDefined();
    const entry = await repositories.errorCatalog.get(top!.errorHash);
    expect(data.catalogEntries).toContainEqual(
      expect.objectContaining({ errorHash: top!.errorHash, title: entry!.title }),
    );
  });

  it('stops asking the LLM once the run token budget is spent and leaves the rest for the next run', async () => {
    const repositories = await h.resources.repositories();
    const ids = [await openAlert(), await openAlert(), await openAlert()];
    llm.chatContent = analysing;
    const run = h.start(nightly, { date: day, 'token-budget': 1, 'llm-concurrency': 1 });
    expect(await run.done).toEqual({ status: 'completed' });
    const alerts = await Promise.all(ids.map((id) => repositories.anomalyAlerts.get(id)));
    const analysed = alerts.filter((a) => a!.llmAnalysis !== null);
    expect(analysed).toHaveLength(1);
    expect(analysed[0]!.llmAnalysis!.startsWith(STATISTICAL_ANALYSIS_PREFIX)).toBe(false);
    const [job] = await repositories.analysisJobs.list({ limit: 1 });
    expect(job!.result).toMatchObject({
      alertAnalysis: { byLlm: 1, leftForBudget: 2, budgetExhausted: true },
      tokenBudget: { limit: 1, exhausted: true },
    });

    // The next run, with budget, picks the two up.
    const next = h.start(nightly, { date: day });
    expect(await next.done).toEqual({ status: 'completed' });
    llm.chatContent = undefined;
    for (const id of ids)
      expect((await repositories.anomalyAlerts.get(id))!.llmAnalysis).toBe(`LLM analysis of alert ${id}.`);
  });

  it('asks once more after an invalid answer, then writes the statistical analysis marked as such', async () => {
    const repositories = await h.resources.repositories();
    const id = await openAlert();
    llm.chatContent = answering(() => JSON.stringify({ analysis: '', suggestedActions: 'reboot' }));
    const before = llm.requests.length;
    const run = h.start(nightly, { date: day });
    expect(await run.done).toEqual({ status: 'completed' });
    llm.chatContent = undefined;
    expect(llm.requests.slice(before).filter((r) => alertOf(r) === id)).toHaveLength(2);
    const alert = await repositories.anomalyAlerts.get(id);
    expect(alert!.llmAnalysis!.startsWith(STATISTICAL_ANALYSIS_PREFIX)).toBe(true);
    expect(alert!.llmAnalysis).toMatch(/observed 40 per window against a baseline of 4/);
    expect(alert!.llmAnalysis).toMatch(/LLM_OUTPUT_INVALID/);
    expect(alert!.suggestedActions.length).toBeGreaterThan(0);
    const [job] = await repositories.analysisJobs.list({ limit: 1 });
    expect(job!.result).toMatchObject({ alertAnalysis: { byLlm: 0, statistical: 1, leftForBudget: 0 } });
  });

  it('asks once more for an invalid catalog entry, then keeps a statistical entry marked as such', async () => {
    const repositories = await h.resources.repositories();
    const [entry] = (await repositories.errorCatalog.list({ limit: 1_000, editedByHuman: false })).filter((c) =>
      c.tags.includes('analysis:llm'),
    );
    // Gone from the catalog, the pattern is new again to the next run.
    await repositories.errorCatalog.delete(entry!.errorHash);
    llm.chatContent = (request) =>
      schemaName(request) === 'catalog_entry' ? '{"title": 7}' : defaultChatContent(request);
    const before = llm.requests.length;
    const run = h.start(nightly, { date: day });
    expect(await run.done).toEqual({ status: 'completed' });
    llm.chatContent = undefined;
    const asks = llm.requests
      .slice(before)
      .filter((r) => r.endpoint === 'chat' && schemaName(r.body as ChatRequest) === 'catalog_entry');
    expect(asks).toHaveLength(2);
    expect(JSON.stringify(asks[0]!.body)).toContain(`pattern ${entry!.errorHash}.`);
    const fallback = await repositories.errorCatalog.get(entry!.errorHash);
    expect(fallback!.tags).toContain('analysis:statistical');
    expect(fallback!.tags).not.toContain('analysis:llm');
    expect(fallback!.title).toBe(entry!.template.slice(0, 120));
    expect(fallback!.description).toMatch(/^Statistical entry \(no LLM\): seen \d+ times on /);
    expect(fallback!.description).toMatch(/LLM_OUTPUT_INVALID/);
    const [job] = await repositories.analysisJobs.list({ limit: 1 });
    expect(job!.result).toMatchObject({ catalogDescriptions: { byLlm: 0, statistical: 1 } });
  });

  it("adds the seed views' last 24 hours to a report about yesterday, and not to one about an older day", async () => {
    const repositories = await h.resources.repositories();
    const report = await repositories.nightlyReports.getByDate(day);
    const last = (report!.statistics as { last24Hours?: Record<string, unknown> }).last24Hours as {
      totalLogs: number;
      totalErrors: number;
      topErrors: { errorHash: string; occurrences: number }[];
      hourly: { logs: number }[];
    };
    // The views count whole hours from the start of the hour 24 hours ago.
    const since = 'timestamp >= toStartOfHour(now() - INTERVAL 24 HOUR)';
    expect(last.totalLogs).toBe(await h.count(`SELECT count() FROM logs WHERE ${since}`));
    expect(last.totalErrors).toBe(
      await h.count(`SELECT count() FROM logs WHERE ${since} AND level IN ('ERROR', 'FATAL')`),
    );
    expect(last.hourly.reduce((a, r) => a + r.logs, 0)).toBe(last.totalLogs);
    expect(last.totalErrors).toBeGreaterThan(0);
    expect(last.topErrors[0]!.occurrences).toBe(
      await h.count(
        `SELECT count() AS n FROM logs WHERE ${since} AND level IN ('ERROR', 'FATAL') GROUP BY error_hash ORDER BY n DESC LIMIT 1`,
      ),
    );

    const older = new Date(Date.now() - 5 * 86_400_000).toISOString().slice(0, 10);
    const run = h.start(nightly, { date: older });
    expect(await run.done).toEqual({ status: 'completed' });
    const old = await repositories.nightlyReports.getByDate(older);
    expect(old!.statistics).not.toHaveProperty('last24Hours');
    expect(old!.totalLogs).toBe(0);
  });
});
