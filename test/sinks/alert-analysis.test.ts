/**
 * The statistical alert analysis (no LLM, or its answer unusable) and the run's token budget: pure parts of
 * src/sinks/alert-analysis.ts; the analyzer against real databases is in test/pipelines/nightly.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  alertAnalysisSchema,
  STATISTICAL_ANALYSIS_PREFIX,
  statisticalAlertAnalysis,
  TokenBudget,
  type AlertFacts,
} from '../../src/sinks/alert-analysis.ts';
import type { AnomalyAlert } from '../../src/stores/postgres/anomaly-alerts.ts';

const alert: AnomalyAlert = {
  id: 7,
  dedupKey: 'k',
  rule: 'error_spike',
  alertType: 'spike',
  status: 'open',
  severity: 'high',
  service: 'payment-service',
  environment: 'production',
  level: 'ERROR',
  errorHash: null,
  score: 6.25,
  observed: 90,
  expected: 30,
  windowStart: new Date('2026-12-06T09:00:00Z'),
  windowEnd: new Date('2026-12-06T09:05:00Z'),
  anomalousWindows: 3,
  normalWindows: 0,
  description: null,
  llmAnalysis: null,
  suggestedActions: [],
  details: {},
  openedAt: new Date('2026-12-06T09:05:00Z'),
  acknowledgedAt: null,
  acknowledgedBy: null,
  resolvedAt: null,
  lastNotifiedAt: null,
  createdAt: new Date('2026-12-06T09:05:00Z'),
  updatedAt: new Date('2026-12-06T09:05:00Z'),
};

const facts = (patch: Partial<AlertFacts> = {}): AlertFacts => ({
  alert,
  window: { from: alert.windowStart!, to: alert.windowEnd! },
  patterns: [{ errorHash: '11', template: 'Payment declined for order <*>', level: 'ERROR', occurrences: 80 }],
  context: {
    catalog: [{ errorHash: '11', title: 'Declines', description: null, solution: 'Check the provider status page' }],
    neighbours: [],
  },
  ...patch,
});

describe('statisticalAlertAnalysis', () => {
  it('says what the series did against its baseline, names the top patterns and catalogued fixes, marked as statistical', () => {
    const answer = statisticalAlertAnalysis(facts());
    expect(answer.analysis.startsWith(STATISTICAL_ANALYSIS_PREFIX)).toBe(true);
    expect(answer.analysis).toContain(
      'observed 90 per window against a baseline of 30 (score 6.25, 3 anomalous windows)',
    );
    expect(answer.analysis).toContain('3 times the baseline');
    expect(answer.analysis).toContain('"Payment declined for order <*>" (ERROR, 80)');
    expect(answer.analysis).toContain('Declines: Check the provider status page');
    expect(answer.suggestedActions[1]).toContain('Payment declined for order <*>');
    // It passes the same checks as an LLM's answer.
    expect(alertAnalysisSchema.parse(answer)).toEqual(answer);
  });

  it('gives silence alerts actions about the service shipping logs, and says why the LLM was not used', () => {
    const silent = { ...alert, alertType: 'silence' as const, observed: 0 };
    const answer = statisticalAlertAnalysis(facts({ alert: silent, patterns: [] }), 'LLM_OUTPUT_INVALID: not JSON');
    expect(answer.analysis).toContain('No ERROR or FATAL patterns of payment-service in that window.');
    expect(answer.analysis).toContain("The LLM's answer was unusable (LLM_OUTPUT_INVALID: not JSON).");
    expect(answer.suggestedActions[0]).toMatch(/still shipping logs/);
  });
});

describe('TokenBudget', () => {
  it('allows requests until spent, then refuses and remembers it', () => {
    const budget = new TokenBudget(100);
    expect(budget.allows()).toBe(true);
    budget.spend(60);
    expect(budget.allows()).toBe(true);
    expect(budget.exhausted).toBe(false);
    budget.spend(60);
    expect(budget.allows()).toBe(false);
    expect(budget).toMatchObject({ spent: 120, exhausted: true });
  });
});
