/**
 * nightly on real PostgreSQL and chdb, with the local OpenAI-compatible
 * server standing in for the LLM: the job's lifecycle, error_patterns,
 * catalog entries, the report (replaced by a re-run), and an invalid LLM
 * answer recorded and never used.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/pipelines/generate.ts';
import { ingest } from '../../src/pipelines/ingest.ts';
import { nightly } from '../../src/pipelines/nightly.ts';
import { startOpenAIServer } from '../support/openai-server.ts';
import { createHarness, type Harness } from '../support/pipeline-harness.ts';

describe('nightly', () => {
  let h: Harness;
  let llm: Awaited<ReturnType<typeof startOpenAIServer>>;
  const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

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
      start: `${day}T09:00:00Z`,
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

    // An engineer's edit survives a re-run, and the re-run replaces the report rather than adding one.
    const edited = catalog[0]!;
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
    });
    // The prompt carried the log text as delimited data.
    const chat = llm.requests.filter((r) => r.endpoint === 'chat');
    expect(chat.length).toBe(2);
    expect(JSON.stringify(chat[0]!.body)).toContain('<logs>');
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
});
