/**
 * The alert lifecycle's events (src/domain/anomaly.ts) as row changes in
 * anomaly_alerts, one open alert per dedup key. Written inside the detector's
 * checkpoint transaction (src/sinks/detector-checkpoints.ts), so an event is
 * applied exactly when the state that emitted it is saved.
 */
import type { AlertEvent } from '../domain/anomaly.ts';
import type { Repositories } from '../stores/postgres/index.ts';

/** One lifecycle event as a row change in anomaly_alerts. */
export async function applyAlertEvent(tx: Repositories, event: AlertEvent): Promise<void> {
  const window = { windowStart: new Date(event.windowStart), windowEnd: new Date(event.windowEnd) };
  const measures = {
    score: event.score,
    observed: event.observed,
    expected: event.expected,
    anomalousWindows: event.anomalousWindows,
    normalWindows: event.normalWindows,
  };
  const active = await tx.anomalyAlerts.findActive(event.dedupKey);
  const description =
    event.rule === 'silence'
      ? `${event.service} (${event.environment}) ${event.level} logs stopped: 0 per minute where about ${event.expected.toFixed(1)} are usual`
      : `${event.service} (${event.environment}) ${event.level} logs ${event.rule === 'drop' ? 'down to' : 'at'} ${event.observed} per minute, about ${event.expected.toFixed(1)} usual (score ${event.score.toFixed(1)})`;
  switch (event.type) {
    case 'pending':
    case 'opened': {
      if (active === null) {
        await tx.anomalyAlerts.insert({
          dedupKey: event.dedupKey,
          rule: event.rule,
          alertType: event.rule,
          status: event.type === 'opened' ? 'open' : 'pending',
          severity: event.level === 'FATAL' || event.rule === 'silence' ? 'high' : 'medium',
          service: event.service,
          environment: event.environment,
          level: event.level,
          description,
          details: { silenced: event.silenced },
          ...window,
          ...measures,
          ...(event.type === 'opened' ? { openedAt: new Date(event.windowEnd) } : {}),
        });
      } else {
        if (event.type === 'opened' && active.status === 'pending')
          await tx.anomalyAlerts.open(active.id, new Date(event.windowEnd));
        await tx.anomalyAlerts.touch(active.id, { ...window, ...measures, description });
      }
      return;
    }
    case 'renotify':
      if (active !== null)
        await tx.anomalyAlerts.touch(active.id, { ...window, ...measures, lastNotifiedAt: new Date(event.windowEnd) });
      return;
    case 'resolved':
      if (active !== null) {
        await tx.anomalyAlerts.touch(active.id, { ...measures });
        await tx.anomalyAlerts.resolve(active.id, new Date(event.windowEnd));
      }
      return;
  }
}
