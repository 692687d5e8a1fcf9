/**
 * The alert lifecycle's events (src/domain/anomaly.ts) as row changes in
 * anomaly_alerts, one open alert per dedup key. Written inside the detector's
 * checkpoint transaction (src/sinks/detector-checkpoints.ts), so an event is
 * applied exactly when the state that emitted it is saved, and so is the
 * webhook notification it owes (the alert_notifications outbox, sent by
 * src/sinks/alert-notifier.ts).
 *
 * Notified: an opening no silence covers; a renotify (the lifecycle emits one
 * only after the cooldown and never while silenced), sent as `opened` when
 * the opening was silenced and the silence has expired; the resolution of an
 * alert whose opening was notified, even under a silence made since, so a
 * receiver that was told of an alert also learns that it ended. A pending
 * alert that lapses was never announced and is not notified.
 */
import type { AlertEvent } from '../domain/anomaly.ts';
import type { NotificationTargets } from '../stores/postgres/alert-notifications.ts';
import type { Repositories } from '../stores/postgres/index.ts';

const NO_TARGETS: NotificationTargets = { defaultUrl: null, dashboardUrl: null };

/** One lifecycle event as a row change in anomaly_alerts, and its notification in the outbox. */
export async function applyAlertEvent(
  tx: Repositories,
  event: AlertEvent,
  targets: NotificationTargets = NO_TARGETS,
): Promise<void> {
  const at = new Date(event.windowEnd);
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
        const inserted = await tx.anomalyAlerts.insert({
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
          ...(event.type === 'opened' ? { openedAt: at } : {}),
        });
        if (event.type === 'opened' && !event.silenced)
          await tx.alertNotifications.enqueue(inserted, 'opened', at, targets);
      } else {
        const opening = event.type === 'opened' && active.status === 'pending';
        if (opening) await tx.anomalyAlerts.open(active.id, at);
        const touched = await tx.anomalyAlerts.touch(active.id, { ...window, ...measures, description });
        if (opening && !event.silenced) await tx.alertNotifications.enqueue(touched, 'opened', at, targets);
      }
      return;
    }
    case 'renotify':
      // last_notified_at is set by the sender when a receiver has taken the notification, not here.
      if (active !== null) {
        const touched = await tx.anomalyAlerts.touch(active.id, { ...window, ...measures });
        // An alert that opened under a silence that has since expired is news to the receiver: announce it as opened.
        const announced = await tx.alertNotifications.openingQueued(active.id);
        await tx.alertNotifications.enqueue(touched, announced ? 'renotified' : 'opened', at, targets);
      }
      return;
    case 'resolved':
      if (active !== null) {
        await tx.anomalyAlerts.touch(active.id, { ...measures });
        const resolved = await tx.anomalyAlerts.resolve(active.id, at);
        if (active.status !== 'pending' && (await tx.alertNotifications.openingQueued(active.id)))
          await tx.alertNotifications.enqueue(resolved, 'resolved', at, targets);
      }
      return;
  }
}
