/**
 * ClickHouse's HTTP interface, served from the real engine (chdb) in this
 * process, so the server-mode path (`@clickhouse/client` over HTTP: URL
 * settings, query parameters, formats, headers, errors) runs in tests where no
 * ClickHouse server can be installed. What it does as the server does:
 *
 * - the query in the `query` URL parameter, the POST body, or both (the URL
 *   part first, then a newline and the body: INSERT ... FORMAT X with the data
 *   in the body); one statement per request (SYNTAX_ERROR otherwise);
 * - `database`, `default_format`, `query_id`, `session_id`, `param_<name>`,
 *   `user` / `password` as URL parameters, or the `X-ClickHouse-User`, `-Key`,
 *   `-Database`, `-Format`, `-Query-Id` headers, or Basic authentication;
 * - every other URL parameter is a setting for this request only (a fresh
 *   chdb session per request, so a setting never leaks into the next one, as
 *   on the server; a `session_id` keeps its session, as on the server);
 *   `enable_http_compression`, `send_progress_in_http_headers`,
 *   `wait_end_of_query` and `http_*` belong to the HTTP layer and are handled
 *   here; an unknown setting is the engine's UNKNOWN_SETTING;
 * - GET runs read-only (`readonly = 2`), as the server does;
 * - request bodies in gzip, deflate or br (`Content-Encoding`);
 *   responses compressed when `enable_http_compression=1` and the client
 *   accepts it; multipart/form-data bodies (`query` and `param_*` parts);
 * - responses carry `X-ClickHouse-Query-Id`, `-Format`, `-Timezone`,
 *   `-Summary` (and `-Progress` when asked); errors carry
 *   `X-ClickHouse-Exception-Code` and the engine's own `Code: N.
 *   DB::Exception: ... (TYPE) (version V)` text, with the HTTP status the
 *   server maps that error to (400, 403, 404, ... else 500);
 * - `GET /ping` and `GET /` answer `Ok.\n`.
 *
 * Known differences: results are materialized before they are sent (as with
 * `wait_end_of_query=1`), so an error never arrives mid-stream; the summary
 * holds what chdb reports (rows and bytes read, also given as the result's
 * rows; `written_rows` is 0, chdb does not count inserted rows); only text
 * formats are accepted for insert data (the body is handed to chdb as
 * statement text); a GET in a named session is not made read-only.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Session } from 'chdb';

export interface ClickHouseHttpRequestRecord {
  readonly method: string;
  readonly path: string;
  /** The URL parameters as sent (settings, query_id, database, param_*, query). */
  readonly params: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
  /** The statement that ran (URL part and body joined), or undefined for ping. */
  readonly query: string | undefined;
  readonly status: number;
}

export interface ClickHouseHttpServer {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly user: string;
  readonly password: string;
  /** Every request answered, in order, for tests that check what the client sent. */
  readonly requests: readonly ClickHouseHttpRequestRecord[];
  close(): Promise<void>;
}

export interface ClickHouseHttpServerOptions {
  /** chdb's data directory; one per process (chdb binds one), so a test file using this server must not open chdb itself. */
  readonly dataDir: string;
  readonly user?: string;
  readonly password?: string;
}

/** Parameters that are not settings: the server reads them itself. */
const REQUEST_PARAMS = new Set([
  'query',
  'database',
  'default_format',
  'query_id',
  'session_id',
  'session_timeout',
  'session_check',
  'user',
  'password',
  'quota_key',
  'role',
  'buffer_size',
  'wait_end_of_query',
]);

/** Settings of the HTTP layer: this server implements them instead of handing them to the engine. */
const HTTP_LAYER_SETTINGS = /^(enable_http_compression|send_progress_in_http_headers|http_[a-z_]+)$/;

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Where chdb (clickhouse-local) changes a server default, a request starts from the server's value: with
 * implicit_select a bare expression would run here and fail on a server.
 */
const SERVER_DEFAULTS = ['SET implicit_select = 0', 'SET allow_introspection_functions = 0'];

/**
 * The HTTP status ClickHouse's server answers an exception with, by exception name (the server maps codes:
 * src/Server/HTTP/exceptionCodeToHTTPStatus.cpp in ClickHouse's repository); anything else is 500.
 */
const STATUS_BY_EXCEPTION: Readonly<Record<string, number>> = {
  REQUIRED_PASSWORD: 401,
  ...Object.fromEntries(
    ['UNKNOWN_USER', 'WRONG_PASSWORD', 'AUTHENTICATION_FAILED', 'SET_NON_GRANTED_ROLE', 'ACCESS_DENIED'].map((n) => [
      n,
      403,
    ]),
  ),
  ...Object.fromEntries(
    [
      'BAD_ARGUMENTS',
      'CANNOT_COMPILE_REGEXP',
      'CANNOT_PARSE_TEXT',
      'CANNOT_PARSE_ESCAPE_SEQUENCE',
      'CANNOT_PARSE_QUOTED_STRING',
      'CANNOT_PARSE_DATE',
      'CANNOT_PARSE_DATETIME',
      'CANNOT_PARSE_NUMBER',
      'CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING',
      'CANNOT_PARSE_IPV4',
      'CANNOT_PARSE_IPV6',
      'CANNOT_PARSE_INPUT_ASSERTION_FAILED',
      'CANNOT_PARSE_UUID',
      'DUPLICATE_COLUMN',
      'ILLEGAL_COLUMN',
      'UNKNOWN_ELEMENT_IN_AST',
      'UNKNOWN_TYPE_OF_AST_NODE',
      'THERE_IS_NO_COLUMN',
      'TOO_DEEP_AST',
      'TOO_BIG_AST',
      'UNEXPECTED_AST_STRUCTURE',
      'SYNTAX_ERROR',
      'INCORRECT_DATA',
      'TYPE_MISMATCH',
      'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE',
    ].map((n) => [n, 400]),
  ),
  ...Object.fromEntries(
    [
      'UNKNOWN_TABLE',
      'UNKNOWN_FUNCTION',
      'UNKNOWN_IDENTIFIER',
      'UNKNOWN_TYPE',
      'UNKNOWN_STORAGE',
      'UNKNOWN_DATABASE',
      'UNKNOWN_SETTING',
      'UNKNOWN_DIRECTION_OF_SORTING',
      'UNKNOWN_AGGREGATE_FUNCTION',
      'UNKNOWN_FORMAT',
      'UNKNOWN_DATABASE_ENGINE',
      'UNKNOWN_TYPE_OF_QUERY',
      'UNKNOWN_ROLE',
    ].map((n) => [n, 404]),
  ),
  QUERY_IS_TOO_LARGE: 413,
  NOT_IMPLEMENTED: 501,
  SOCKET_TIMEOUT: 503,
  CANNOT_OPEN_FILE: 503,
  CANNOT_SCHEDULE_TASK: 503,
  HTTP_LENGTH_REQUIRED: 411,
  TIMEOUT_EXCEEDED: 408,
  UNSUPPORTED_MEDIA_TYPE: 415,
};

/** An exception as the server words it. */
class ServerException extends Error {
  constructor(
    readonly code: number,
    readonly type: string,
    text: string,
  ) {
    super(`Code: ${code}. DB::Exception: ${text}. (${type})`);
  }
}

const exceptionPattern = /Code: (\d+)\. DB::Exception: .*\(([A-Z0-9_]+)\)/s;

/** A ClickHouse SQL string literal. */
function literal(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/** Setting values arrive as text; numbers go unquoted because some numeric settings refuse a quoted value. */
function settingValue(value: string): string {
  return /^-?\d+(\.\d+)?$/.test(value) ? value : literal(value);
}

const decoders: Readonly<Record<string, (body: Buffer) => Promise<Buffer>>> = {
  gzip: promisify(zlib.gunzip),
  deflate: promisify(zlib.inflate),
  br: promisify(zlib.brotliDecompress),
};

const encoders: Readonly<Record<string, (body: Buffer) => Promise<Buffer>>> = {
  gzip: promisify(zlib.gzip),
  deflate: promisify(zlib.deflate),
  br: promisify(zlib.brotliCompress),
};

function contentType(format: string): string {
  if (/^(TSV|TabSeparated)/i.test(format)) return 'text/tab-separated-values; charset=UTF-8';
  if (/^JSON/i.test(format)) return 'application/json; charset=UTF-8';
  if (/^CSV/i.test(format)) return 'text/csv; charset=UTF-8; header=absent';
  return 'text/plain; charset=UTF-8';
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startClickHouseHttpServer(options: ClickHouseHttpServerOptions): Promise<ClickHouseHttpServer> {
  const user = options.user ?? 'default';
  const password = options.password ?? '';
  const requests: ClickHouseHttpRequestRecord[] = [];
  // The data directory's own session: it stays open so the engine keeps the directory bound while no request runs.
  const anchor = new Session(options.dataDir);
  const version = (await anchor.queryAsync('SELECT version()', { format: 'TSVRaw' })).text().trim();
  const sessions = new Map<string, { session: Session; busy: boolean }>();

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const method = request.method ?? 'GET';
    const params = new URLSearchParams(url.search);
    const record = (status: number, query: string | undefined): void => {
      const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, String(v)]));
      requests.push({ method, path: url.pathname, params: Object.fromEntries(params), headers, query, status });
    };
    if (method === 'GET' && (url.pathname === '/ping' || (url.pathname === '/' && !params.has('query')))) {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8' }).end('Ok.\n');
      record(200, undefined);
      return;
    }
    if (url.pathname !== '/' || (method !== 'GET' && method !== 'POST')) {
      response
        .writeHead(404, { 'Content-Type': 'text/plain; charset=UTF-8' })
        .end(`There is no handle ${url.pathname}\n`);
      record(404, undefined);
      return;
    }
    const queryId = params.get('query_id') ?? header(request, 'x-clickhouse-query-id') ?? randomUUID();
    const acceptsCompression = params.get('enable_http_compression') === '1';
    const accepted = String(request.headers['accept-encoding'] ?? '')
      .split(',')
      .map((e) => e.trim().split(';')[0])
      .find((e): e is string => e !== undefined && Object.hasOwn(encoders, e));
    const responseEncoding = acceptsCompression ? accepted : undefined;
    const send = async (status: number, headers: Record<string, string>, body: Buffer): Promise<void> => {
      const encoded = responseEncoding === undefined ? body : await encoders[responseEncoding]!(body);
      response.writeHead(status, {
        'X-ClickHouse-Query-Id': queryId,
        'X-ClickHouse-Timezone': 'UTC',
        'X-ClickHouse-Server-Display-Name': 'chdb-http-fixture',
        ...(responseEncoding === undefined ? {} : { 'Content-Encoding': responseEncoding }),
        ...headers,
      });
      response.end(encoded);
    };
    let statement: string | undefined;
    try {
      authenticate(request, params, user, password);
      let body = await readBody(request);
      const encoding = header(request, 'content-encoding');
      if (encoding !== undefined && encoding !== 'identity') {
        const decode = decoders[encoding];
        if (decode === undefined)
          throw new ServerException(36, 'BAD_ARGUMENTS', `Unknown Content-Encoding of HTTP request: ${encoding}`);
        body = await decode(body);
      }
      const type = header(request, 'content-type') ?? '';
      let bodyText = body.toString('utf8');
      if (type.startsWith('multipart/form-data')) {
        // The client sends large query parameters this way; undici parses multipart as fetch does.
        const form = await new Response(body, { headers: { 'content-type': type } }).formData();
        bodyText = '';
        for (const [name, value] of form) {
          if (typeof value !== 'string') continue;
          if (name === 'query') bodyText = value;
          else params.set(name, value);
        }
      }
      const urlQuery = params.get('query');
      statement = urlQuery === null ? bodyText : bodyText === '' ? urlQuery : `${urlQuery}\n${bodyText}`;
      if (statement.trim() === '') throw new ServerException(62, 'SYNTAX_ERROR', 'Empty query');
      // ClickHouse's own block compression (compress=1, decompress=1) is not spoken here: refused, never ignored.
      if (params.get('compress') === '1' || params.get('decompress') === '1')
        throw new ServerException(
          48,
          'NOT_IMPLEMENTED',
          'ClickHouse native compression is not supported by this server',
        );
      params.delete('compress');
      params.delete('decompress');
      const format = params.get('default_format') ?? header(request, 'x-clickhouse-format') ?? 'TabSeparated';
      const database = params.get('database') ?? header(request, 'x-clickhouse-database');
      const sessionId = params.get('session_id');
      const setup: string[] = [];
      if (sessionId === null || !sessions.has(sessionId)) setup.push(...SERVER_DEFAULTS);
      if (database !== null && database !== undefined) {
        if (!identifier.test(database))
          throw new ServerException(81, 'UNKNOWN_DATABASE', `Database ${database} does not exist`);
        setup.push(`USE ${database}`);
      }
      for (const [name, value] of params) {
        if (name.startsWith('param_')) {
          if (!identifier.test(name))
            throw new ServerException(36, 'BAD_ARGUMENTS', `Bad query parameter name ${name}`);
          // The session keeps the parameter's text exactly as sent; the engine parses it by the placeholder's type.
          setup.push(`SET ${name} = ${literal(value)}`);
          continue;
        }
        if (REQUEST_PARAMS.has(name) || HTTP_LAYER_SETTINGS.test(name)) continue;
        if (!identifier.test(name)) throw new ServerException(115, 'UNKNOWN_SETTING', `Unknown setting '${name}'`);
        setup.push(`SET ${name} = ${settingValue(value)}`);
      }
      // The server runs GET requests read-only; 2 still lets them change settings. Not in a named session: chdb would
      // keep it there for the session's later requests, and readonly = 2 cannot be set back.
      if (method === 'GET' && sessionId === null) setup.push('SET readonly = 2');

      const run = async (session: Session) => {
        await refuseMultiStatements(session, urlQuery ?? bodyText);
        for (const sql of setup) await session.queryAsync(sql);
        return session.queryAsync(statement!, { format });
      };
      let result: Awaited<ReturnType<Session['queryAsync']>>;
      if (sessionId === null) {
        const session = new Session(options.dataDir);
        try {
          result = await run(session);
        } finally {
          session.close();
        }
      } else {
        let entry = sessions.get(sessionId);
        if (entry === undefined) {
          if (params.get('session_check') === '1')
            throw new ServerException(372, 'SESSION_NOT_FOUND', `Session ${sessionId} not found`);
          entry = { session: new Session(options.dataDir), busy: false };
          sessions.set(sessionId, entry);
        }
        if (entry.busy)
          throw new ServerException(373, 'SESSION_IS_LOCKED', `Session ${sessionId} is locked by a concurrent client`);
        entry.busy = true;
        try {
          result = await run(entry.session);
        } finally {
          entry.busy = false;
        }
      }
      const output = Buffer.from(result.bytes());
      const isInsert = /^\s*INSERT\b/i.test(statement);
      const resultFormat = isInsert ? format : (/\bFORMAT\s+(\w+)\s*;?\s*$/i.exec(statement)?.[1] ?? format);
      const summary = {
        read_rows: String(result.rowsRead),
        read_bytes: String(result.bytesRead),
        written_rows: '0',
        written_bytes: '0',
        total_rows_to_read: String(result.rowsRead),
        result_rows: String(isInsert ? 0 : result.rowsRead),
        result_bytes: String(isInsert ? 0 : output.length),
        elapsed_ns: String(Math.round(result.elapsed * 1e9)),
      };
      const headers: Record<string, string> = {
        'Content-Type': contentType(resultFormat),
        'X-ClickHouse-Format': resultFormat,
        'X-ClickHouse-Summary': JSON.stringify(summary),
      };
      if (params.get('send_progress_in_http_headers') === '1') {
        const { result_rows: _rows, result_bytes: _bytes, ...progress } = summary;
        headers['X-ClickHouse-Progress'] = JSON.stringify(progress);
      }
      await send(200, headers, output);
      record(200, statement);
    } catch (error) {
      const { code, type, message } = asServerException(error);
      const status = STATUS_BY_EXCEPTION[type] ?? 500;
      await send(
        status,
        { 'Content-Type': 'text/plain; charset=UTF-8', 'X-ClickHouse-Exception-Code': String(code) },
        Buffer.from(`${message} (version ${version})\n`),
      );
      record(status, statement);
    }
  }

  // The server reads URLs up to http_max_uri_size (1 MiB by default); node's own limit is 16 KiB, and query parameters
  // (an UPDATE's id list, a vector) travel in the URL.
  const server: Server = createServer({ maxHeaderSize: 1024 * 1024 }, (request, response) => {
    handle(request, response).catch((error: unknown) => {
      // Only a broken socket gets here; the client sees the connection end.
      response.destroy(error instanceof Error ? error : new Error(String(error)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    user,
    password,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const { session } of sessions.values()) session.close();
      sessions.clear();
      anchor.close();
    },
  };
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function authenticate(request: IncomingMessage, params: URLSearchParams, user: string, password: string): void {
  let givenUser = header(request, 'x-clickhouse-user') ?? params.get('user') ?? undefined;
  let givenPassword = header(request, 'x-clickhouse-key') ?? params.get('password') ?? undefined;
  const authorization = header(request, 'authorization');
  if (authorization !== undefined) {
    const basic = /^Basic\s+(\S+)$/i.exec(authorization);
    if (basic === null || (givenUser ?? givenPassword) !== undefined)
      throw new ServerException(
        194,
        'REQUIRED_PASSWORD',
        'Invalid authentication: it is not allowed to use Authorization HTTP header and authentication via parameters simultaneously',
      );
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    givenUser = colon < 0 ? decoded : decoded.slice(0, colon);
    givenPassword = colon < 0 ? '' : decoded.slice(colon + 1);
  }
  if ((givenUser ?? 'default') !== user || (givenPassword ?? '') !== password)
    throw new ServerException(
      516,
      'AUTHENTICATION_FAILED',
      `${givenUser ?? 'default'}: Authentication failed: password is incorrect, or there is no user with such name`,
    );
}

/** The server takes one statement per request; chdb alone would run several. The engine's own parser decides. */
async function refuseMultiStatements(session: Session, statementPart: string): Promise<void> {
  // Insert data may follow the statement in the same text; it is no second statement.
  if (/^\s*INSERT\b/i.test(statementPart)) return;
  try {
    await session.queryAsync(`SELECT formatQuerySingleLine(${literal(statementPart)})`, { format: 'Null' });
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    if (!text.includes('Multi-statements are not allowed')) return; // the statement itself will report its own error
    const position = /failed at position (\d+)/.exec(text)?.[1] ?? '?';
    throw new ServerException(
      62,
      'SYNTAX_ERROR',
      `Syntax error (Multi-statements are not allowed): failed at position ${position}`,
    );
  }
}

function asServerException(error: unknown): { code: number; type: string; message: string } {
  if (error instanceof ServerException) return { code: error.code, type: error.type, message: error.message };
  const text = error instanceof Error ? error.message : String(error);
  const match = exceptionPattern.exec(text);
  if (match !== null) return { code: Number(match[1]), type: match[2]!, message: text.trim() };
  // Not the engine's exception (a body that could not be decoded, say): the server's catch-all.
  return { code: 1001, type: 'STD_EXCEPTION', message: `Code: 1001. DB::Exception: ${text}. (STD_EXCEPTION)` };
}
