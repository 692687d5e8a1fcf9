/**
 * Every named pipeline, in one explicit map: what `logflow run <name>`,
 * `npm run pipeline -- <name>` and `npm start` choose from. The same
 * definitions run in server and embedded mode; only Resources differ.
 */
import type { PipelineDefinition } from '../core/pipeline.ts';
import { api } from './api.ts';
import { embeddings } from './embeddings.ts';
import { baselines } from '../pipelines/baselines.ts';
import { detect } from '../pipelines/detect.ts';
import { generate } from '../pipelines/generate.ts';
import { ingest } from '../pipelines/ingest.ts';
import { nightly } from '../pipelines/nightly.ts';
import { retention } from '../pipelines/retention.ts';
import { vectorize } from '../pipelines/vectorize.ts';
import type { Resources } from '../pipelines/resources.ts';

export const pipelines = {
  generate,
  ingest,
  vectorize,
  detect,
  baselines,
  nightly,
  retention,
  api,
  embeddings,
} as const satisfies Record<string, PipelineDefinition<Resources>>;

export type PipelineName = keyof typeof pipelines;

export function isPipelineName(name: string): name is PipelineName {
  return Object.hasOwn(pipelines, name);
}
