import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  normalizeBlock,
  normalizeLines,
  readAhead,
  serveNormalizeBlocks,
  WARM_UP_MESSAGES,
  warmUp,
  type NormalizeLinesOptions,
} from '../../../src/app/commands/normalize.ts';
import { MAX_MESSAGE_LENGTH, normalizeMessage } from '../../../src/domain/normalizer.ts';

/** Reference model: split at `\n`, drop one `\r` before it, no line after a final newline. */
function expectedOutput(input: string): string {
  if (input === '') return '';
  const lines = input.split('\n');
  if (input.endsWith('\n')) lines.pop();
  return lines
    .map((line) => {
      const { template, errorHash } = normalizeMessage(line.endsWith('\r') ? line.slice(0, -1) : line);
      return `${errorHash}\t${template}\n`;
    })
    .join('');
}

function countLines(input: string): number {
  return expectedOutput(input).split('\n').length - 1;
}

/** Feeds `chunks` through a PassThrough as bytes and collects the output as UTF-8. */
async function run(
  chunks: readonly (Buffer | string)[],
  options: NormalizeLinesOptions = {},
): Promise<{ output: string; lines: number }> {
  const input = new PassThrough();
  const output = new PassThrough();
  const received: Buffer[] = [];
  output.on('data', (chunk: Buffer) => received.push(chunk));
  const done = normalizeLines(input, output, options);
  for (const chunk of chunks) input.write(chunk);
  input.end();
  const { lines } = await done;
  output.end();
  await new Promise((resolve) => output.once('end', resolve));
  return { output: Buffer.concat(received).toString('utf8'), lines };
}

function cutInto(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(from, point));
    from = point;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

/**
 * Any lines of `lineText`, with or without a final newline, encoded in `encoding` and cut into any chunks, give the
 * line-by-line reference for the text the bytes hold.
 */
async function expectAnyCutToMatch(
  lineText: fc.Arbitrary<string>,
  encoding: 'utf8' | 'latin1',
  options: NormalizeLinesOptions = {},
): Promise<void> {
  await fc.assert(
    fc.asyncProperty(
      fc.array(lineText, { maxLength: 20 }),
      fc.boolean(),
      fc.array(fc.nat(), { maxLength: 8 }),
      async (lines, finalNewline, cuts) => {
        const bytes = Buffer.from(lines.join('\n') + (finalNewline ? '\n' : ''), encoding);
        const text = bytes.toString(encoding);
        const { output, lines: count } = await run(cutInto(bytes, cuts), options);
        expect(output).toBe(expectedOutput(text));
        expect(count).toBe(countLines(text));
      },
    ),
    { numRuns: 300 },
  );
}

describe('normalizeLines', () => {
  it('writes hash<TAB>template per line, keeping empty lines, CRLF endings and a last line without newline', async () => {
    const input = 'Invalid user admin from 10.0.0.1\r\n\nConnection closed by 10.0.0.2 [preauth]\n\r\nlast line 42';
    const { output, lines } = await run([input]);
    expect(lines).toBe(5);
    const rows = output.split('\n');
    expect(rows.pop()).toBe('');
    expect(rows.map((row) => row.split('\t')[1])).toEqual([
      'Invalid user <*> from <*>',
      '',
      'Connection closed by <*> [preauth]',
      '',
      'last line <*>',
    ]);
    expect(rows[1]).toBe(`${normalizeMessage('').errorHash}\t`);
    expect(output).toBe(expectedOutput(input));
  });

  it('writes nothing for empty input and one line for a lone newline', async () => {
    expect(await run([])).toEqual({ output: '', lines: 0 });
    expect(await run(['\n'])).toEqual({ output: `${normalizeMessage('').errorHash}\t\n`, lines: 1 });
    expect((await run(['a\n'])).lines).toBe(1);
  });

  it('joins lines, CRLF pairs and multi-byte characters split across chunks', async () => {
    const bytes = Buffer.from('héllo wörld 1\r\nзаказ 2 принят\r\n😀 done 3', 'utf8');
    for (let cut = 0; cut <= bytes.length; cut++) {
      const { output } = await run([bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect(output).toBe(expectedOutput(bytes.toString('utf8')));
    }
  });

  it('decodes invalid UTF-8 as U+FFFD instead of failing', async () => {
    const { output, lines } = await run([Buffer.from([0x61, 0xff, 0xfe, 0x20, 0x31, 0x0a, 0xc3])]);
    expect(lines).toBe(2);
    expect(output).toBe(expectedOutput('a\ufffd\ufffd 1\n\ufffd'));
  });

  it('accepts string chunks', async () => {
    const { output } = await run(['one 1\ntw', 'o 2\n']);
    expect(output).toBe(expectedOutput('one 1\ntwo 2\n'));
  });

  it('matches the line-by-line reference for any text cut into any chunks', async () => {
    const lineText = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.constantFrom('', '\r', 'a\rb', 'x 1 y', '\ud83d\ude00'),
    );
    await expectAnyCutToMatch(lineText, 'utf8');
  });

  it('matches the line-by-line reference for ASCII text (written from the input bytes) cut into any chunks', async () => {
    const asciiUnit = fc.integer({ min: 0, max: 127 }).map((code) => String.fromCharCode(code));
    const lineText = fc.oneof(
      fc.string({ unit: asciiUnit, maxLength: 40 }),
      fc.constantFrom('', '\r', 'a\rb', 'x 1 y', 'k=v "a b" <*> http://h/x?y=1 1.2.3.4:80 Jul 1 5 KB', ' 1'),
    );
    await expectAnyCutToMatch(lineText, 'latin1', { workers: 0 });
  });

  it('gives the same output over blocks that are ASCII and blocks that are not, long lines included', async () => {
    const samples = [
      '081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating',
      '10.0.0.1 "GET /v2/servers/detail?limit=5 HTTP/1.1" status: 200 len: 1893 time: 0.2477829\r',
      '',
      // Its template is longer than the line: the room made for a line must hold it.
      ' 1 2 3 4 5 a 6 b 7 c 8 d 9',
    ];
    // A line of more than MAX_MESSAGE_LENGTH, cut; one whose template outgrows MAX_MESSAGE_LENGTH; one non-ASCII line
    // now and then, so that some blocks (about 256 KiB) are ASCII and some are not.
    const long = `${'x 1 '.repeat(MAX_MESSAGE_LENGTH / 4)}tail\r`;
    const line = (i: number) =>
      i % 9_001 === 7 ? long : i % 20_011 === 3 ? 'заказ 42 😀 \ud800' : `${samples[i % samples.length]} #${i % 7}`;
    const text = Array.from({ length: 60_001 }, (_, i) => line(i)).join('\n');
    const expected = expectedOutput(Buffer.from(text, 'utf8').toString('utf8'));
    const chunks = cutInto(Buffer.from(text, 'utf8'), [1, 70_000, 300_000, 2_000_001]);
    expect((await run(chunks, { workers: 0 })).output).toBe(expected);
    expect((await run(chunks, { workers: 1 })).output).toBe(expected);
  });

  it('streams a large input in order, waiting for a slow output to drain', async () => {
    const samples = [
      'PacketResponder 1 for block blk_38865049064139660 terminating',
      'Failed password for root from 5.36.59.76 port 42393 ssh2',
      'Received connection request /10.10.34.11:45307',
      'onExtend:1514038530000 14 0 4',
      '',
    ];
    const lineCount = 200_000;
    const inputLines = Array.from({ length: lineCount }, (_, i) => `${samples[i % samples.length]} #${i}`);
    const text = `${inputLines.join('\r\n')}\r\n`;

    const input = new PassThrough();
    let received = '';
    let maxBuffered = 0;
    let writes = 0;
    const output = new Writable({
      highWaterMark: 16 * 1024,
      decodeStrings: false,
      write(chunk: string | Buffer, _encoding, callback) {
        received += chunk.toString();
        writes += 1;
        // A slow consumer: every write completes on a later turn.
        setImmediate(callback);
      },
    });
    const originalWrite = output.write.bind(output);
    output.write = ((chunk: string, ...rest: never[]) => {
      const result = originalWrite(chunk, ...rest);
      maxBuffered = Math.max(maxBuffered, output.writableLength);
      return result;
    }) as typeof output.write;

    const done = normalizeLines(input, output);
    const bytes = Buffer.from(text, 'utf8');
    for (let offset = 0; offset < bytes.length; offset += 65_536) input.write(bytes.subarray(offset, offset + 65_536));
    input.end();
    const { lines } = await done;
    await new Promise<void>((resolve) => output.end(resolve));

    expect(lines).toBe(lineCount);
    expect(received).toBe(expectedOutput(text));
    expect(writes).toBeGreaterThan(5);
    // Without waiting for 'drain' the whole output (megabytes) would sit in the writable's buffer; waiting, it holds
    // about one block's output (a block is 1 MiB of input) at a time.
    expect(received.length).toBeGreaterThan(8 * 1024 * 1024);
    expect(maxBuffered).toBeLessThan(3 * 1024 * 1024);
  });

  it('keeps only the first MAX_MESSAGE_LENGTH code units of an endless line, as the normalizer does', async () => {
    const huge = 'x'.repeat(64) + ' 1'.repeat(2_500_000);
    const chunks: string[] = [];
    for (let offset = 0; offset < huge.length; offset += 100_000) chunks.push(huge.slice(offset, offset + 100_000));
    const { output, lines } = await run([...chunks, '\nnext 2\n']);
    expect(lines).toBe(2);
    expect(output).toBe(
      `${normalizeMessage(huge).errorHash}\t${normalizeMessage(huge).template}\n${expectedOutput('next 2\n')}`,
    );
    expect(normalizeMessage(huge)).toEqual(normalizeMessage(huge.slice(0, MAX_MESSAGE_LENGTH)));
  });

  it('keeps only the first MAX_MESSAGE_LENGTH code units of a long line that comes in one chunk', async () => {
    const huge = `${'é 1 '.repeat(500_000)}\r`;
    const { output, lines } = await run([`first 1\n${huge}\nnext 2`]);
    expect(lines).toBe(3);
    expect(output).toBe(expectedOutput(`first 1\n${huge}\nnext 2`));
  });

  it('gives the same output on worker threads as on this thread, in order, over many blocks', async () => {
    const samples = [
      '081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating',
      '10.0.0.1 "GET /v2/servers/detail?limit=5 HTTP/1.1" status: 200 len: 1893 time: 0.2477829',
      'chrome.exe - www.example.com:443 open through proxy proxy.example.org:5070 HTTPS',
      'заказ 42 принят 😀\r',
      '',
    ];
    // A few lines longer than a cut between chunks, not one in six: those made 466 million characters and minutes.
    const long = 'x'.repeat(70_000);
    const line = (i: number) => (i % 10_007 === 5 ? long : `${samples[i % samples.length]} #${i % 7}`);
    const text = Array.from({ length: 120_001 }, (_, i) => line(i)).join('\n');
    const bytes = Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from([0x0a, 0xff, 0xc3])]);
    expect(bytes.length).toBeGreaterThan(8 * 1024 * 1024);
    const expected = expectedOutput(bytes.toString('utf8'));
    const chunks = cutInto(bytes, [1, 70_000, 300_000, 2_000_001, 5_000_000]);
    expect((await run(chunks, { workers: 0 })).output).toBe(expected);
    // One worker leaves this thread blocks to normalize itself, between the worker's, in input order.
    expect((await run(chunks, { workers: 1 })).output).toBe(expected);
    const onWorkers = await run(chunks, { workers: 2 });
    expect(onWorkers.output).toBe(expected);
    expect(onWorkers.lines).toBe(120_002);
  });

  it('counts each block a worker posts in the shared counter the main thread reads, once it is posted', () => {
    const done = new Int32Array(new SharedArrayBuffer(4));
    const posted: string[] = [];
    let listener: ((bytes: Uint8Array) => void) | undefined;
    serveNormalizeBlocks(
      done,
      (message) => {
        // Posted before it is counted: a count never runs ahead of the results.
        expect(Atomics.load(done, 0)).toBe(posted.length);
        posted.push(Buffer.from(message.output).toString('utf8'));
      },
      { on: (_event, receive) => (listener = receive) },
    );
    for (const text of ['a 1\n', 'b 2\nc\n']) listener?.(Buffer.from(text));
    expect(Atomics.load(done, 0)).toBe(2);
    expect(posted).toEqual([expectedOutput('a 1\n'), expectedOutput('b 2\nc\n')]);
  });

  it('grows its output for blocks whose output is many times their input (empty and short lines)', async () => {
    const input = `${'\n'.repeat(300_000)}${'a\r\n1\n'.repeat(100_000)}é\n`;
    const { output, lines } = await run([input], { workers: 0 });
    expect(lines).toBe(500_001);
    expect(output).toBe(expectedOutput(input));
  });

  it('strips a CR that falls exactly after MAX_MESSAGE_LENGTH code units', async () => {
    const line = 'y'.repeat(MAX_MESSAGE_LENGTH);
    const { output } = await run([`${line}\r`, '\n']);
    expect(output).toBe(expectedOutput(`${line}\r\n`));
  });

  it('rejects when the output fails', async () => {
    const input = new PassThrough();
    const output = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('disk full'));
      },
    });
    output.on('error', () => {});
    const done = normalizeLines(input, output);
    input.end('a 1\nb 2\n'.repeat(100_000));
    await expect(done).rejects.toThrow('disk full');
  });

  it('rejects when the input fails', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    output.resume();
    const done = normalizeLines(input, output);
    input.write('a 1\n');
    input.destroy(new Error('read failed'));
    await expect(done).rejects.toThrow('read failed');
  });
});

describe('readAhead', () => {
  /** Runs `body` with an fd open on a file holding `bytes`, and removes the file after. */
  async function withFile<T>(bytes: Uint8Array, body: (fd: number) => Promise<T>): Promise<T> {
    const dir = mkdtempSync(join(tmpdir(), 'logflow-read-ahead-'));
    const file = join(dir, 'input.log');
    writeFileSync(file, bytes);
    const fd = openSync(file, 'r');
    try {
      return await body(fd);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('reads a file whole, in order, in chunks of at most the size asked for', async () => {
    const bytes = Buffer.from(Array.from({ length: 10_001 }, (_, i) => i % 251));
    const chunks = await withFile(bytes, async (fd) => {
      const read: Uint8Array[] = [];
      for await (const chunk of readAhead(fd, 4096)) read.push(chunk);
      return read;
    });
    expect(chunks.every((chunk) => chunk.length > 0 && chunk.length <= 4096)).toBe(true);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    const fromEmpty = await withFile(new Uint8Array(0), async (fd) => {
      let count = 0;
      for await (const _ of readAhead(fd, 4096)) count++;
      return count;
    });
    expect(fromEmpty).toBe(0);
  });

  it('feeds normalizeLines the output a stream of the same bytes gives, on worker threads too', async () => {
    const text = Array.from({ length: 30_000 }, (_, i) => `job ${i} done in ${i % 97} ms on node-${i % 5}`).join('\n');
    const expected = expectedOutput(text);
    for (const workers of [0, 1]) {
      const output = await withFile(Buffer.from(text), async (fd) => {
        const sink = new PassThrough();
        const received: Buffer[] = [];
        sink.on('data', (chunk: Buffer) => received.push(chunk));
        await normalizeLines(readAhead(fd, 64 * 1024), sink, { workers });
        return Buffer.concat(received).toString('utf8');
      });
      expect(output).toBe(expected);
    }
  });

  it('rejects when a read fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'logflow-read-ahead-'));
    const fd = openSync(dir, 'r');
    try {
      await expect(normalizeLines(readAhead(fd, 4096), new PassThrough())).rejects.toThrow(/EISDIR/);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('warmUp', () => {
  it('runs ASCII messages of one line each, which take the byte path', () => {
    for (const message of WARM_UP_MESSAGES) expect(message).toMatch(/^[\x20-\x7e\t]*$/);
    const block = Buffer.from(`${WARM_UP_MESSAGES.join('\n')}\n`, 'latin1');
    expect(Buffer.from(normalizeBlock(block).output).toString('latin1')).toBe(expectedOutput(block.toString('latin1')));
  });

  it('leaves no trace in what is normalized after it', () => {
    const text = 'took 5 ms\nuser root logged in from 10.0.0.1\n';
    const before = Buffer.from(normalizeBlock(Buffer.from(text)).output).toString('utf8');
    warmUp(true);
    warmUp(false);
    expect(Buffer.from(normalizeBlock(Buffer.from(text)).output).toString('utf8')).toBe(before);
    expect(before).toBe(expectedOutput(text));
  });
});
