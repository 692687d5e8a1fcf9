/**
 * Alerts raised or resolved outside the detector's lifecycle: a novel error
 * pattern (src/sinks/pattern-vectors.ts), the nightly analysis' statistical
 * anomalies (src/sinks/daily-analysis.ts) and an engineer's resolve through
 * the API (src/api/routes/alerts.ts). Each transition and the webhook it owes
 * go into one transaction, as the detector's do (src/sinks/alert-events.ts),
 * so a receiver hears of every alert exactly once whichever process made it,
 * and the sender (src/sinks/alert-notifier.ts) posts it from the outbox.
 */
import type { NotificationTargets } from '../stores/postgres/alert-notifications.ts';
import type { AnomalyAlert, NewAnomalyAlert } from '../stores/postgres/anomaly-alerts.ts';
import { isUniqueViolation } from '../stores/postgres/db.ts';
import type { PoolRepositories } from '../stores/postgres/index.ts';

/**
 * Inserts an open alert and queues its `opened` notification unless a silence covers it; null when the key already
 * has an active alert (raised earlier, or by another instance at the same moment).
 */
export async function raiseAlert(
  repositories: PoolRepositories,
  alert: NewAnomalyAlert & { readonly openedAt: Date },
  targets: NotificationTargets,
): Promise<AnomalyAlert | null> {
  try {
    return await repositories.transaction(async (tx) => {
      if ((await tx.anomalyAlerts.findActive(alert.dedupKey)) !== null) return null;
      const inserted = await tx.anomalyAlerts.insert(alert);
      const at = alert.openedAt;
      const silenced = await tx.alertSilences.matches(
        {
          rule: inserted.rule,
          service: inserted.service,
          environment: inserted.environment,
          level: inserted.level,
          dedupKey: inserted.dedupKey,
        },
        at,
      );
      if (inserted.status === 'open' && !silenced) await tx.alertNotifications.enqueue(inserted, 'opened', at, targets);
      return inserted;
    });
  } catch (error) {
    // One open alert per key is the point: the instance that lost the race has nothing to add.
    if (isUniqueViolation(error)) return null;
    throw error;
  }
}

/**
 * Resolves an alert by id (the repository's not-found and conflict errors pass through) and owes its receiver the
 * resolution when the opening was queued, so one told of an alert also learns that it ended.
 */
export async function resolveAlert(
  repositories: PoolRepositories,
  id: number,
  targets: NotificationTargets,
  at: Date = new Date(),
): Promise<AnomalyAlert> {
  return repositories.transaction(async (tx) => {
    const resolved = await tx.anomalyAlerts.resolve(id, at);
    if (await tx.alertNotifications.openingQueued(resolved.id))
      await tx.alertNotifications.enqueue(resolved, 'resolved', at, targets);
    return resolved;
  });
}
