/**
 * Every PostgreSQL repository behind one object. `createRepositories(pool)`
 * binds them to the pool; `transaction(fn)` hands `fn` the same repositories
 * bound to one transaction, so writes to several tables (alerts and the
 * detector checkpoint, a report and its job) commit together or not at all.
 */
import type pg from 'pg';
import { createAlertNotificationRepository, type AlertNotificationRepository } from './alert-notifications.ts';
import { createAlertSilenceRepository, type AlertSilenceRepository } from './alert-silences.ts';
import { createAnalysisJobRepository, type AnalysisJobRepository } from './analysis-jobs.ts';
import { createAnomalyAlertRepository, type AnomalyAlertRepository } from './anomaly-alerts.ts';
import { createApiKeyRepository, type ApiKeyRepository } from './api-keys.ts';
import { createAppConfigRepository, type AppConfigRepository } from './app-config.ts';
import { withTransaction, type Queryable } from './db.ts';
import { createDetectorCheckpointRepository, type DetectorCheckpointRepository } from './detector-checkpoints.ts';
import { createErrorCatalogRepository, type ErrorCatalogRepository } from './error-catalog.ts';
import { createNightlyReportRepository, type NightlyReportRepository } from './nightly-reports.ts';
import { createServiceRepository, type ServiceRepository } from './services.ts';
import { createSinkBatchRepository, type SinkBatchRepository } from './sink-batches.ts';
import { createUserPreferencesRepository, type UserPreferencesRepository } from './user-preferences.ts';

export interface Repositories {
  readonly analysisJobs: AnalysisJobRepository;
  readonly nightlyReports: NightlyReportRepository;
  readonly errorCatalog: ErrorCatalogRepository;
  readonly anomalyAlerts: AnomalyAlertRepository;
  readonly services: ServiceRepository;
  readonly userPreferences: UserPreferencesRepository;
  readonly appConfig: AppConfigRepository;
  readonly sinkBatches: SinkBatchRepository;
  readonly detectorCheckpoints: DetectorCheckpointRepository;
  readonly alertSilences: AlertSilenceRepository;
  readonly alertNotifications: AlertNotificationRepository;
  readonly apiKeys: ApiKeyRepository;
}

export interface PoolRepositories extends Repositories {
  /**
   * Runs `fn` in one transaction with repositories bound to it; commits when
   * it resolves, rolls back when it throws. Inside `fn` use only `tx`: with
   * PGlite the pool has one connection, which the transaction holds.
   */
  transaction<T>(fn: (tx: Repositories) => Promise<T>): Promise<T>;
}

/** Repositories that run their statements on `db` (a pool, or a client inside a transaction). */
export function repositoriesFor(db: Queryable): Repositories {
  return {
    analysisJobs: createAnalysisJobRepository(db),
    nightlyReports: createNightlyReportRepository(db),
    errorCatalog: createErrorCatalogRepository(db),
    anomalyAlerts: createAnomalyAlertRepository(db),
    services: createServiceRepository(db),
    userPreferences: createUserPreferencesRepository(db),
    appConfig: createAppConfigRepository(db),
    sinkBatches: createSinkBatchRepository(db),
    detectorCheckpoints: createDetectorCheckpointRepository(db),
    alertSilences: createAlertSilenceRepository(db),
    alertNotifications: createAlertNotificationRepository(db),
    apiKeys: createApiKeyRepository(db),
  };
}

export function createRepositories(pool: pg.Pool): PoolRepositories {
  return {
    ...repositoriesFor(pool),
    transaction: (fn) => withTransaction(pool, (client) => fn(repositoriesFor(client))),
  };
}

export * from './alert-silences.ts';
export * from './analysis-jobs.ts';
export * from './anomaly-alerts.ts';
export * from './api-keys.ts';
export * from './app-config.ts';
export * from './db.ts';
export * from './detector-checkpoints.ts';
export * from './error-catalog.ts';
export * from './nightly-reports.ts';
export * from './services.ts';
export * from './sink-batches.ts';
export * from './user-preferences.ts';
