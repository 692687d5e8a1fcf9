#!/usr/bin/env node
/**
 * Compiles src/ to dist/ (`npm run build`, and npm's `prepare` on install), and
 * tells bin/logflow.js whether dist/ still matches src/.
 *
 * The build only emits (tsc --noCheck): type checking is `npm run typecheck`'s
 * job and CI runs it, and emitting alone takes a third of the time, which
 * matters when `npm start` rebuilds after a `git pull`.
 *
 * tsc writes into a directory of its own inside dist/ and each file is then
 * renamed into place, so a process that is starting, or lazily importing a
 * module, while another one rebuilds reads either the old or the new version
 * of every file, never a half-written one; two builds at once both finish.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STAMP = '.build-stamp.json';

/**
 * The newest modification time among the build's inputs. Directories count
 * too: `mv` keeps a file's time, but adding, removing or renaming a file
 * changes its directory's.
 */
function newestInput(root) {
  let newest = 0;
  const visit = (file) => {
    const stat = statSync(file);
    newest = Math.max(newest, stat.mtimeMs);
    if (stat.isDirectory()) for (const entry of readdirSync(file)) visit(path.join(file, entry));
  };
  visit(path.join(root, 'src'));
  for (const config of ['tsconfig.json', 'tsconfig.build.json'])
    newest = Math.max(newest, statSync(path.join(root, config)).mtimeMs);
  return newest;
}

/**
 * Whether dist/ must be (re)built before it runs: missing, or built from inputs
 * other than today's. Without src/ (the Docker image) dist/ is all there is.
 */
export function isStale(root = ROOT) {
  if (!existsDir(path.join(root, 'src'))) return false;
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(path.join(root, 'dist', STAMP), 'utf8'));
  } catch {
    return true;
  }
  // Any other time, earlier too (a file restored with its old time), means other inputs.
  return stamp.inputs !== newestInput(root);
}

function existsDir(dir) {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

function files(dir, prefix = '') {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(prefix, entry.name);
    return entry.isDirectory() ? files(path.join(dir, entry.name), relative) : [relative];
  });
}

/** Compiles src/ into `outDir` (dist/ unless told); throws with tsc's output when it fails. */
export function build(root = ROOT, outDir = path.join(root, 'dist')) {
  let tsc;
  try {
    tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    throw new Error(
      'dist/ is missing or older than src/, and TypeScript (a dev dependency) is not installed to build it: ' +
        'run `npm install`, then `npm run build`',
    );
  }
  // Read before compiling: a file saved during the build leaves dist/ stale, as it is.
  const inputs = newestInput(root);
  const staging = path.join(outDir, `.building-${process.pid}-${Date.now()}`);
  try {
    const result = spawnSync(
      process.execPath,
      [tsc, '-p', path.join(root, 'tsconfig.build.json'), '--noCheck', '--outDir', staging],
      { cwd: root, encoding: 'utf8' },
    );
    if (result.error !== undefined) throw result.error;
    if (result.status !== 0) throw new Error(`tsc failed (exit ${result.status}):\n${result.stdout}${result.stderr}`);
    const built = files(staging);
    for (const file of built) {
      mkdirSync(path.dirname(path.join(outDir, file)), { recursive: true });
      renameSync(path.join(staging, file), path.join(outDir, file));
    }
    // A module deleted or moved in src/ must not stay importable from dist/.
    const keep = new Set(built);
    for (const file of files(outDir)) {
      if (!keep.has(file) && !file.startsWith('.')) rmSync(path.join(outDir, file), { force: true });
    }
    const stamp = path.join(outDir, `${STAMP}.${process.pid}`);
    writeFileSync(stamp, `${JSON.stringify({ inputs })}\n`);
    renameSync(stamp, path.join(outDir, STAMP));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Builds dist/ when it is stale, saying so on stderr (stdout may be piped, as `logflow normalize`'s is). */
export function ensureBuilt(root = ROOT) {
  if (!isStale(root)) return;
  const started = Date.now();
  process.stderr.write('logflow: compiling src/ to dist/ (changed since the last build)...\n');
  build(root);
  process.stderr.write(`logflow: compiled in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    build();
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  }
}
