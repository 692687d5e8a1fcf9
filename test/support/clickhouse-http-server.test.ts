/**
 * The ClickHouse HTTP fixture stands in for a server in the server-mode tests,
 * so it must answer as the server answers: raw HTTP here, outside any client,
 * including requests no client would send.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClickHouseHttpServer, type ClickHouseHttpServer } from './clickhouse-http-server.ts';

let dir: string;
let server: ClickHouseHttpServer;
let auth: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'logflow-ch-http-'));
  server = await startClickHouseHttpServer({ dataDir: dir, user: 'logflow', password: 's3cret' });
  auth = { 'X-ClickHouse-User': 'logflow', 'X-ClickHouse-Key': 's3cret' };
  await call('POST', '/', 'CREATE DATABASE fixture_db');
  await call('POST', '/?database=fixture_db', 'CREATE TABLE t (id UInt32, name String) ENGINE = MergeTree ORDER BY id');
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

async function call(
  method: string,
  pathAndQuery: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
) {
  const init: RequestInit = { method, headers: { ...auth, ...headers } };
  if (body !== undefined) init.body = body;
  const response = await fetch(`${server.url}${pathAndQuery}`, init);
  const text = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, body: text };
}

describe('the ClickHouse HTTP fixture (chdb behind HTTP)', () => {
  it('answers /ping and GET / with Ok.', async () => {
    for (const p of ['/ping', '/']) {
      const reply = await call('GET', p);
      expect(reply.status).toBe(200);
      expect(reply.body.toString()).toBe('Ok.\n');
    }
  });

  it('takes the query from the URL, from the body, and the statement from the URL with insert data in the body', async () => {
    const insert = await call(
      'POST',
      `/?database=fixture_db&query=${encodeURIComponent('INSERT INTO t (id, name) FORMAT JSONEachRow')}`,
      '{"id":1,"name":"a"}\n{"id":2,"name":"b"}\n',
    );
    expect(insert.status).toBe(200);
    const viaUrl = await call('GET', `/?database=fixture_db&query=${encodeURIComponent('SELECT count() FROM t')}`);
    expect(viaUrl.body.toString()).toBe('2\n');
    // Default output format is TabSeparated; default_format and X-ClickHouse-Format choose another.
    expect(viaUrl.headers.get('x-clickhouse-format')).toBe('TabSeparated');
    const viaBody = await call(
      'POST',
      '/?database=fixture_db&default_format=JSONEachRow',
      'SELECT id, name FROM t ORDER BY id',
    );
    expect(viaBody.body.toString()).toBe('{"id":1,"name":"a"}\n{"id":2,"name":"b"}\n');
    expect(viaBody.headers.get('x-clickhouse-format')).toBe('JSONEachRow');
    expect(viaBody.headers.get('content-type')).toContain('application/json');
    const viaHeader = await call('POST', '/', 'SELECT 1 AS x', { 'X-ClickHouse-Format': 'CSVWithNames' });
    expect(viaHeader.body.toString()).toBe('"x"\n1\n');
    // A FORMAT clause wins and is reported.
    const clause = await call('POST', '/?default_format=CSV', 'SELECT 1 AS x FORMAT JSONEachRow');
    expect(clause.headers.get('x-clickhouse-format')).toBe('JSONEachRow');
    expect(clause.body.toString()).toBe('{"x":1}\n');
  });

  it('uses the database header, and echoes or creates the query id', async () => {
    const reply = await call('POST', '/?query_id=my-id', 'SELECT currentDatabase()', {
      'X-ClickHouse-Database': 'fixture_db',
    });
    expect(reply.body.toString()).toBe('fixture_db\n');
    expect(reply.headers.get('x-clickhouse-query-id')).toBe('my-id');
    const fromHeader = await call('POST', '/', 'SELECT 1', { 'X-ClickHouse-Query-Id': 'hdr-id' });
    expect(fromHeader.headers.get('x-clickhouse-query-id')).toBe('hdr-id');
    const generated = await call('POST', '/', 'SELECT 1');
    expect(generated.headers.get('x-clickhouse-query-id')).toMatch(/^[0-9a-f-]{36}$/);
    const summary = JSON.parse(generated.headers.get('x-clickhouse-summary') ?? 'null') as Record<string, string>;
    expect(Object.keys(summary)).toEqual(expect.arrayContaining(['read_rows', 'written_rows', 'elapsed_ns']));
    expect(Object.values(summary).every((v) => typeof v === 'string')).toBe(true);
  });

  it('applies URL settings to that request only', async () => {
    const read = async (query: string) =>
      (await call('POST', `/?${query}`, "SELECT getSetting('join_use_nulls')")).body.toString().trim();
    expect(await read('join_use_nulls=1')).toBe('true');
    expect(await read('')).toBe('false');
    const unknown = await call('POST', '/?no_such_setting_here=1', 'SELECT 1');
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('x-clickhouse-exception-code')).toBe('115');
    expect(unknown.body.toString()).toMatch(/^Code: 115\. DB::Exception: .*\(UNKNOWN_SETTING\) \(version [\d.]+\)\n$/s);
  });

  it('binds query parameters from their text, as the server does', async () => {
    const reply = await call(
      'POST',
      `/?param_s=${encodeURIComponent("it's \\\\ here")}&param_a=${encodeURIComponent("['x','y\\'z']")}&default_format=JSONEachRow`,
      'SELECT {s:String} AS s, {a:Array(String)} AS a',
    );
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body.toString())).toEqual({ s: "it's \\ here", a: ['x', "y'z"] });
  });

  it('answers errors with the exception text, its code header, and the server status', async () => {
    const missing = await call('POST', '/', 'SELECT * FROM fixture_db.nope');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-clickhouse-exception-code')).toBe('60');
    expect(missing.body.toString()).toMatch(/^Code: 60\. DB::Exception: .*\(UNKNOWN_TABLE\)/);
    const syntax = await call('POST', '/', 'SELEC 1');
    expect(syntax.status).toBe(400);
    expect(syntax.headers.get('x-clickhouse-exception-code')).toBe('62');
    const multi = await call('POST', '/', 'SELECT 1; SELECT 2');
    expect(multi.status).toBe(400);
    expect(multi.body.toString()).toContain('Multi-statements are not allowed');
    const empty = await call('POST', '/', '');
    expect(empty.body.toString()).toMatch(/^Code: 62\. DB::Exception: Empty query\. \(SYNTAX_ERROR\)/);
    const native = await call('POST', '/?compress=1', 'SELECT 1');
    expect(native.status).toBe(501);
    expect(native.headers.get('x-clickhouse-exception-code')).toBe('48');
    const database = await call('POST', '/?database=no_such_db', 'SELECT 1');
    expect(database.status).toBe(404);
    expect(database.headers.get('x-clickhouse-exception-code')).toBe('81');
  });

  it('refuses wrong credentials (403) and takes Basic authentication', async () => {
    const wrong = await call('POST', '/', 'SELECT 1', { 'X-ClickHouse-Key': 'wrong' });
    expect(wrong.status).toBe(403);
    expect(wrong.headers.get('x-clickhouse-exception-code')).toBe('516');
    expect(wrong.body.toString()).toContain('(AUTHENTICATION_FAILED)');
    const basic = await fetch(`${server.url}/?query=SELECT%2042`, {
      headers: { Authorization: `Basic ${Buffer.from('logflow:s3cret').toString('base64')}` },
    });
    expect(await basic.text()).toBe('42\n');
  });

  it('starts from the server defaults where chdb differs', async () => {
    const reply = await call('POST', '/', '1 + 1');
    expect(reply.status).toBe(400);
    expect(reply.headers.get('x-clickhouse-exception-code')).toBe('62');
  });

  it('runs GET read-only', async () => {
    const reply = await call('GET', `/?query=${encodeURIComponent("INSERT INTO fixture_db.t VALUES (9, 'z')")}`);
    expect(reply.status).toBe(500);
    expect(reply.body.toString()).toContain('(READONLY)');
  });

  it('reads gzip bodies and compresses responses when asked', async () => {
    const reply = await call('POST', '/?enable_http_compression=1', gzipSync('SELECT 7'), {
      'Content-Encoding': 'gzip',
      'Accept-Encoding': 'gzip',
    });
    // fetch decodes Content-Encoding itself; the header says the server compressed.
    expect(reply.headers.get('content-encoding')).toBe('gzip');
    expect(reply.body.toString()).toBe('7\n');
    const raw = await new Promise<Buffer>((resolve, reject) => {
      import('node:http').then(({ request }) => {
        const req = request(
          `${server.url}/?enable_http_compression=1&query=SELECT%208`,
          { headers: { ...auth, 'Accept-Encoding': 'gzip' } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve(Buffer.concat(chunks)));
          },
        );
        req.on('error', reject);
        req.end();
      }, reject);
    });
    expect(gunzipSync(raw).toString()).toBe('8\n');
  });

  it('keeps a session by session_id and refuses one in use', async () => {
    await call('POST', '/?session_id=s1', 'SET join_use_nulls = 1');
    const same = await call('POST', '/?session_id=s1', "SELECT getSetting('join_use_nulls')");
    expect(same.body.toString()).toBe('true\n');
    const other = await call('POST', '/?session_id=s2', "SELECT getSetting('join_use_nulls')");
    expect(other.body.toString()).toBe('false\n');
  });

  it('serves @clickhouse/client: compression both ways, multipart parameters, typed errors', async () => {
    const client = createClient({
      url: server.url,
      username: 'logflow',
      password: 's3cret',
      database: 'fixture_db',
      compression: { request: true, response: true },
    });
    try {
      await client.command({ query: 'CREATE TABLE t_client (id UInt32) ENGINE = MergeTree ORDER BY id' });
      await client.insert({ table: 't_client', values: [{ id: 3 }], format: 'JSONEachRow' });
      const big = 'x'.repeat(5000);
      const rows = await (
        await client.query({
          query: 'SELECT count() AS n, length({big:String}) AS len FROM t_client',
          query_params: { big },
          format: 'JSONEachRow',
          use_multipart_params: true,
        })
      ).json<{ n: number; len: number }>();
      // ClickHouse 26's default leaves 64-bit integers unquoted in JSON (the engines pin it to quoted).
      expect(rows).toEqual([{ n: 1, len: 5000 }]);
      const error = await client.query({ query: 'SELECT * FROM nope' }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: '60', type: 'UNKNOWN_TABLE' });
      expect(await client.ping()).toEqual({ success: true });
    } finally {
      await client.close();
    }
    const insert = server.requests.find((r) => r.params.query?.startsWith('INSERT INTO t_client ') === true);
    expect(insert?.headers['content-encoding']).toBe('gzip');
    const query = server.requests.find((r) => r.query?.includes('length({big:String})') === true);
    expect(query?.params.enable_http_compression).toBe('1');
    expect(query?.headers['content-type']).toMatch(/^multipart\/form-data/);
  });
});
