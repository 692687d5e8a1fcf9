/**
 * The JSON a webhook receiver gets when an alert opens, is re-notified after
 * its cooldown, or resolves (README.md, "Notifications"). Versioned: fields
 * are only ever added within a version; a change of meaning or a removal
 * takes a new `version`. `text` is a one-line summary in Slack's mrkdwn, so a
 * Slack (or Mattermost, or Discord `/slack`) incoming webhook can take the
 * payload as it is.
 */
import { z } from 'zod';

export const ALERT_NOTIFICATION_VERSION = 1;
export const NOTIFICATION_EVENTS = ['opened', 'renotified', 'resolved'] as const;
export type NotificationEvent = (typeof NOTIFICATION_EVENTS)[number];

const isoTime = z.iso.datetime({ offset: true });

/** The payload, as documented in README.md; the tests check every delivery against it. */
export const alertNotificationSchema = z
  .object({
    version: z.literal(ALERT_NOTIFICATION_VERSION),
    /** Also sent as the Idempotency-Key header: the same for every attempt of one delivery. */
    delivery_id: z.uuid(),
    event: z.enum(NOTIFICATION_EVENTS),
    alert_id: z.int().positive(),
    dedup_key: z.string(),
    /** The detector's rule (spike, drop, silence) or the alert's origin (novel_pattern, statistical). */
    kind: z.string(),
    alert_type: z.string(),
    status: z.enum(['pending', 'open', 'acknowledged', 'resolved']),
    service: z.string().nullable(),
    environment: z.string().nullable(),
    level: z.string().nullable(),
    severity: z.enum(['low', 'medium', 'high', 'critical']),
    score: z.number().nullable(),
    /** Log events counted in the window that caused the event. */
    count: z.number().nullable(),
    /** What the baseline expected for that window. */
    expected: z.number().nullable(),
    window_start: isoTime.nullable(),
    window_end: isoTime.nullable(),
    opened_at: isoTime.nullable(),
    resolved_at: isoTime.nullable(),
    description: z.string().nullable(),
    /** The dashboard's alerts page, when the detector knows the dashboard's address. */
    dashboard_url: z.url().nullable(),
    text: z.string().min(1),
  })
  .strict();

export type AlertNotification = z.infer<typeof alertNotificationSchema>;

/** What the payload is built from: the alert row as it stands after the transition. */
export interface NotifiedAlert {
  readonly id: number;
  readonly dedupKey: string;
  readonly rule: string;
  readonly alertType: string;
  readonly status: AlertNotification['status'];
  readonly severity: AlertNotification['severity'];
  readonly service: string | null;
  readonly environment: string | null;
  readonly level: string | null;
  readonly score: number | null;
  readonly observed: number | null;
  readonly expected: number | null;
  readonly windowStart: Date | null;
  readonly windowEnd: Date | null;
  readonly openedAt: Date | null;
  readonly resolvedAt: Date | null;
  readonly description: string | null;
}

/**
 * `<base>#/alerts/<id>`: the dashboard's alerts page (web/main.ts routes by the first path part of the hash; the page
 * lists the open alerts, the id names the one meant).
 */
export function alertDashboardUrl(base: string, alertId: number): string {
  const url = new URL(base);
  url.hash = `/alerts/${alertId}`;
  return url.toString();
}

const HEADLINE: Record<NotificationEvent, string> = {
  opened: ':rotating_light: *Alert opened*',
  renotified: ':bell: *Alert still open*',
  resolved: ':white_check_mark: *Alert resolved*',
};

// Slack's mrkdwn treats these three as markup; escaping them keeps a service name from breaking the text.
const escapeMrkdwn = (s: string): string => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

export function buildAlertNotification(
  alert: NotifiedAlert,
  event: NotificationEvent,
  deliveryId: string,
  dashboardBase: string | null,
): AlertNotification {
  const dashboardUrl = dashboardBase === null ? null : alertDashboardUrl(dashboardBase, alert.id);
  const where = [alert.service, alert.environment, alert.level].filter((p) => p !== null).join(' / ');
  const summary = alert.description ?? alert.dedupKey;
  const link = dashboardUrl === null ? '' : ` <${dashboardUrl}|open in logflow>`;
  const text = `${HEADLINE[event]} [${alert.severity}] ${escapeMrkdwn(alert.rule)}${
    where === '' ? '' : ` ${escapeMrkdwn(where)}`
  }: ${escapeMrkdwn(summary)}${link}`;
  return {
    version: ALERT_NOTIFICATION_VERSION,
    delivery_id: deliveryId,
    event,
    alert_id: alert.id,
    dedup_key: alert.dedupKey,
    kind: alert.rule,
    alert_type: alert.alertType,
    status: alert.status,
    service: alert.service,
    environment: alert.environment,
    level: alert.level,
    severity: alert.severity,
    score: alert.score,
    count: alert.observed,
    expected: alert.expected,
    window_start: alert.windowStart?.toISOString() ?? null,
    window_end: alert.windowEnd?.toISOString() ?? null,
    opened_at: alert.openedAt?.toISOString() ?? null,
    resolved_at: alert.resolvedAt?.toISOString() ?? null,
    description: alert.description,
    dashboard_url: dashboardUrl,
    text,
  };
}
