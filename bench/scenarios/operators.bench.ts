/**
 * The dataflow core's CPU-bound operators in one table: message
 * normalization (bench/normalize.bench.ts) and event-time windows
 * (bench/windows.bench.ts), each against its own same-run baseline. Both take
 * their own arguments (`--quick`, `--rounds N`, `--seconds N`, `--events N`);
 * this runs them one after the other with the same arguments.
 */
import normalize from './normalize.bench.ts';
import windows from './windows.bench.ts';
import { toOutput, type Benchmark, type BenchContext, type BenchOutput, type BenchRow } from '../support/types.ts';

const benchmark: Benchmark = {
  name: 'operators',
  description:
    'normalize (Loghub-2k, vs digit-token masker) and event-time windows (vs bufferCount + Map) in one table',
  async run(ctx: BenchContext): Promise<BenchOutput> {
    const rows: BenchRow[] = [];
    const notes: string[] = [];
    for (const part of [normalize, windows]) {
      ctx.log(`-- ${part.name}: ${part.description}`);
      const output = toOutput(await part.run(ctx));
      rows.push(
        ...output.rows.map((row) =>
          row.scenario.startsWith(part.name) ? row : { ...row, scenario: `${part.name}: ${row.scenario}` },
        ),
      );
      notes.push(...(output.notes ?? []));
    }
    return { rows, notes };
  },
};

export default benchmark;
