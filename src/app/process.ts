/** One pipeline as a process: resources by config, /metrics and health, graceful stop on signals. */
import { loadConfig, redactedConfig } from '../core/config.ts';
import { describeCause } from '../core/errors.ts';
import { Health } from '../core/health.ts';
import { createLogger } from '../core/logger.ts';
import { createMetrics } from '../core/metrics.ts';
import type { PipelineDefinition } from '../core/pipeline.ts';
import { runUntilSignal, serveProcessEndpoints, startPipeline } from './runner.ts';
import { openResources, type Resources } from './resources.ts';

export async function runPipelineProcess(
  definition: PipelineDefinition<Resources>,
  options: Readonly<Record<string, unknown>>,
): Promise<number> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel });
  logger.info({ pipeline: definition.name, options, config: redactedConfig(config) }, 'starting');
  const metrics = createMetrics();
  const health = new Health();
  const resources = openResources(config, logger);
  const server =
    config.metricsPort === 0
      ? undefined
      : await serveProcessEndpoints({ metrics, health, port: config.metricsPort }).catch((error: unknown) => {
          logger.warn(
            { err: error, port: config.metricsPort },
            `metrics not served on port ${config.metricsPort}: ${describeCause(error)} (choose another port with LOGFLOW_METRICS_PORT, or 0 for none)`,
          );
          return undefined;
        });
  try {
    // The probe lets /readyz see a dependency the pipeline waits for without a retry loop of its own (a broker away,
    // Redis down).
    const running = startPipeline(definition, {
      config,
      logger,
      metrics,
      health,
      resources,
      options,
      probe: () => resources.health(),
    });
    return await runUntilSignal(running, logger);
  } finally {
    await resources.close();
    server?.close();
  }
}
