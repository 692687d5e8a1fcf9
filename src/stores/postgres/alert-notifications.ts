/**
 * alert_notifications: the transactional outbox of alert webhooks (README.md,
 * "Notifications"). A row is written in the transaction that records the
 * alert transition it reports, so it exists exactly when the transition does;
 * the sender (src/sinks/alert-notifier.ts) claims due rows with a lease,
 * posts them and marks them sent, rescheduled or failed. A claim takes no row
 * of an alert while an earlier row of that alert is still undelivered, so a
 * receiver hears `opened` before `resolved`.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Config } from '../../core/config.ts';
import {
  buildAlertNotification,
  NOTIFICATION_EVENTS,
  type AlertNotification,
  type NotificationEvent,
  type NotifiedAlert,
} from '../../domain/alert-notification.ts';
import { execute, jsonParam, parseInput, queryRows, toSafeInteger, type Queryable } from './db.ts';

export interface NotificationTargets {
  /** LOGFLOW_ALERT_WEBHOOK_URL; a service's `alert_webhook_url` wins over it. Neither: nothing is queued. */
  readonly defaultUrl: string | null;
  /** The dashboard's base address, for the payload's link; null when unknown. */
  readonly dashboardUrl: string | null;
}

/** `--dashboard-url` of the pipelines that raise alerts (detect, vectorize, nightly); LOGFLOW_DASHBOARD_URL otherwise. */
export const dashboardUrlOption = z.url({ protocol: /^https?$/ }).optional();

/** The targets of a process: the configured receiver, and the dashboard link (a pipeline's --dashboard-url first). */
export function notificationTargets(
  config: Pick<Config, 'alertWebhookUrl' | 'dashboardUrl'>,
  dashboardUrl?: string,
): NotificationTargets {
  return { defaultUrl: config.alertWebhookUrl ?? null, dashboardUrl: dashboardUrl ?? config.dashboardUrl ?? null };
}

export interface PendingNotification {
  readonly id: number;
  readonly deliveryId: string;
  readonly alertId: number;
  readonly event: NotificationEvent;
  readonly url: string;
  readonly payload: AlertNotification;
  /** Attempts so far, this one included. */
  readonly attempts: number;
}

export interface NotificationCounts {
  readonly pending: number;
  readonly sent: number;
  readonly failed: number;
}

export interface AlertNotificationRepository {
  /**
   * Queues the notification of one transition, to the service's webhook or else `targets.defaultUrl`; returns the
   * queued payload, or null when there is no receiver or the transition is already queued.
   */
  enqueue(
    alert: NotifiedAlert,
    event: NotificationEvent,
    windowEnd: Date,
    targets: NotificationTargets,
  ): Promise<AlertNotification | null>;
  /** Whether the alert's opening was queued (then its resolution is owed to the same receiver). */
  openingQueued(alertId: number): Promise<boolean>;
  /** Leases up to `limit` due rows for `leaseMs`, counting an attempt on each; oldest first. */
  claim(limit: number, leaseMs: number): Promise<PendingNotification[]>;
  /** Delivered: the row is done and the alert's last_notified_at is now, in one statement. */
  markSent(id: number): Promise<void>;
  /** A retriable failure: due again after `delayMs`. */
  reschedule(id: number, delayMs: number, error: string): Promise<void>;
  /** Refused for good (or out of attempts): never sent again. */
  markFailed(id: number, error: string): Promise<void>;
  counts(): Promise<NotificationCounts>;
}

interface NotificationRow {
  id: string;
  delivery_id: string;
  alert_id: string;
  event: NotificationEvent;
  url: string;
  payload: AlertNotification;
  attempts: number;
}

const positiveId = z.int().positive();
const errorText = z.string().transform((s) => s.slice(0, 2_000));

export function createAlertNotificationRepository(db: Queryable): AlertNotificationRepository {
  return {
    async enqueue(alert, event, windowEnd, targets) {
      const checkedEvent = parseInput(z.enum(NOTIFICATION_EVENTS), event, 'notification event');
      const deliveryId = randomUUID();
      const payload = buildAlertNotification(alert, checkedEvent, deliveryId, targets.dashboardUrl);
      // The receiver is chosen here, inside the transition's transaction, so a later edit of the service moves only
      // transitions that happen after it.
      const [row] = await queryRows<{ id: string }>(
        db,
        `INSERT INTO alert_notifications (delivery_id, alert_id, event, window_end, url, payload)
         SELECT $1::uuid, $2, $3, $4, target.url, $5::jsonb
         FROM (SELECT COALESCE((SELECT alert_webhook_url FROM services WHERE name = $6), $7::text) AS url) AS target
         WHERE target.url IS NOT NULL
         ON CONFLICT (alert_id, event, window_end) DO NOTHING
         RETURNING id`,
        [deliveryId, alert.id, checkedEvent, windowEnd, jsonParam(payload), alert.service, targets.defaultUrl],
      );
      return row === undefined ? null : payload;
    },

    async openingQueued(alertId) {
      const id = parseInput(positiveId, alertId, 'alert id');
      const rows = await queryRows<{ one: number }>(
        db,
        `SELECT 1 AS one FROM alert_notifications WHERE alert_id = $1 AND event = 'opened' LIMIT 1`,
        [id],
      );
      return rows.length > 0;
    },

    async claim(limit, leaseMs) {
      const n = parseInput(z.int().min(1).max(10_000), limit, 'claim limit');
      const lease = parseInput(z.int().min(1), leaseMs, 'lease');
      const rows = await queryRows<NotificationRow>(
        db,
        `UPDATE alert_notifications SET lease_until = now() + make_interval(secs => $2::double precision / 1000),
           attempts = attempts + 1
         WHERE id IN (
           SELECT c.id FROM alert_notifications c
           WHERE c.sent_at IS NULL AND c.failed_at IS NULL AND c.next_attempt_at <= now()
             AND (c.lease_until IS NULL OR c.lease_until < now())
             AND NOT EXISTS (SELECT 1 FROM alert_notifications p
                             WHERE p.alert_id = c.alert_id AND p.id < c.id AND p.sent_at IS NULL AND p.failed_at IS NULL)
           ORDER BY c.id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, delivery_id, alert_id, event, url, payload, attempts`,
        [n, lease],
      );
      return rows
        .map((r) => ({
          id: toSafeInteger(r.id, 'alert_notifications.id'),
          deliveryId: r.delivery_id,
          alertId: toSafeInteger(r.alert_id, 'alert_notifications.alert_id'),
          event: r.event,
          url: r.url,
          payload: r.payload,
          attempts: r.attempts,
        }))
        .sort((a, b) => a.id - b.id);
    },

    async markSent(id) {
      const checked = parseInput(positiveId, id, 'notification id');
      await execute(
        db,
        `WITH sent AS (
           UPDATE alert_notifications SET sent_at = now(), lease_until = NULL, last_error = NULL
           WHERE id = $1 AND sent_at IS NULL RETURNING alert_id)
         UPDATE anomaly_alerts SET last_notified_at = now() FROM sent WHERE anomaly_alerts.id = sent.alert_id`,
        [checked],
      );
    },

    async reschedule(id, delayMs, error) {
      const checked = parseInput(positiveId, id, 'notification id');
      const delay = parseInput(z.number().min(0).finite(), delayMs, 'retry delay');
      await execute(
        db,
        `UPDATE alert_notifications
         SET lease_until = NULL, last_error = $3, next_attempt_at = now() + make_interval(secs => $2::double precision / 1000)
         WHERE id = $1 AND sent_at IS NULL`,
        [checked, delay, parseInput(errorText, error, 'error')],
      );
    },

    async markFailed(id, error) {
      const checked = parseInput(positiveId, id, 'notification id');
      await execute(
        db,
        `UPDATE alert_notifications SET failed_at = now(), lease_until = NULL, last_error = $2
         WHERE id = $1 AND sent_at IS NULL`,
        [checked, parseInput(errorText, error, 'error')],
      );
    },

    async counts() {
      const [row] = await queryRows<{ pending: string; sent: string; failed: string }>(
        db,
        `SELECT count(*) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL) AS pending,
                count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent,
                count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed
         FROM alert_notifications`,
      );
      return {
        pending: Number(row?.pending ?? 0),
        sent: Number(row?.sent ?? 0),
        failed: Number(row?.failed ?? 0),
      };
    },
  };
}
