import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../../src/core/config.ts';
import { openPostgres } from '../../../src/clients/engines.ts';
import { describeRepositoryContract } from './repositories.contract.ts';

describeRepositoryContract('PGlite', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-repositories-'));
  const { pool, mode, close } = await openPostgres(loadConfig({ LOGFLOW_DATA_DIR: dir }));
  return {
    pool,
    mode,
    async close() {
      await close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
