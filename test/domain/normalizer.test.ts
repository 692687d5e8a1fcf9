/** normalizeMessage and hashTemplate (src/domain/normalizer.ts): Loghub examples, variable kinds, the hash, properties. */
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  hashTemplate,
  MAX_MESSAGE_LENGTH,
  normalizeAsciiLine,
  normalizeLine,
  normalizeMessage,
  uint64ToDecimal,
  unitsOf,
  writeHashBytes,
  writeTemplateBytes,
} from '../../src/domain/normalizer.ts';

const templateOf = (message: string): string => normalizeMessage(message).template;

// ---------------------------------------------------------------------------
// Reference model of the hash, written from the documented algorithm rather
// than from the incremental code: whole string at once, BigInt for the decimal.

function fmix32Reference(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hashReference(template: string): string {
  const units = Array.from({ length: template.length }, (_, i) => template.charCodeAt(i));
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < units.length; i += 2) {
    const k = (units[i] as number) | ((units[i + 1] ?? 0) << 16);
    a = Math.imul(a ^ k, 0xcc9e2d51);
    a ^= a >>> 15;
    b = Math.imul(((b << 13) | (b >>> 19)) ^ k, 0x1b873593);
  }
  const high = fmix32Reference(a ^ units.length);
  const low = fmix32Reference(b ^ Math.imul(units.length, 0x9e3779b1));
  return ((BigInt(high) << 32n) | BigInt(low)).toString();
}

// ---------------------------------------------------------------------------
// Generators.

const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));
/** Any UTF-16 string, lone surrogates and NUL included. */
const anyUtf16String = fc.string({ unit: anyCodeUnit, maxLength: 200 });
const fullUnicodeString = fc.string({ unit: 'binary', maxLength: 200 });

/** Fragments that exercise every rule when glued together in any order, with or without spaces. */
const logFragment = fc.oneof(
  fc.constantFrom(
    'user',
    'User',
    'username',
    'for',
    'from',
    'Failed',
    'password',
    'port',
    'ssh2',
    'Jul',
    'May',
    'PDT',
    'KB',
    'B',
    's',
    'ms',
    '%',
    '=',
    ' = ',
    ',',
    ';',
    ':',
    '::',
    '.',
    '..',
    '...',
    '!',
    '?',
    "'",
    '"',
    '\\',
    '/',
    '(',
    ')',
    '[',
    ']',
    '{',
    '}',
    '<',
    '>',
    '<*>',
    '|',
    '`',
    '@',
    '#',
    '-',
    '_',
    'http://',
    'a.b.com',
    'x.example.org',
    'ns.host.de',
    'api.example.io:8443',
    'www.example.zz',
    'org.example.io',
    'GET',
    'HTTP/1.1',
    '/a?b=1&c=2',
    'deadbeefcafe',
    'fe80::',
    'T',
    'Z',
    "can't",
    'id',
    'blk_',
    ' ',
    '  ',
    '\t',
    '\r\n',
    '\u00a0',
    '\u2028',
    '\ud800',
    '\udc00',
    '\u0000',
    'é',
    '日本',
    '😀',
  ),
  fc.integer({ min: -100_000, max: 100_000 }).map(String),
  fc.ipV4(),
  fc.ipV6(),
  fc.uuid(),
  fc.stringMatching(/^[a-zA-Z]{1,10}$/),
);
const logLike = fc.array(logFragment, { maxLength: 40 }).map((parts) => parts.join(''));
const logLikeSpaced = fc.array(logFragment, { maxLength: 40 }).map((parts) => parts.join(' '));
const anyMessage = fc.oneof(anyUtf16String, fullUnicodeString, logLike, logLikeSpaced);

/** Variables of one kind each; any two values of a kind must give the same template. */
const hexDigitsWithADigit = fc.stringMatching(/^[0-9a-f]{1,15}[0-9]$/);
/** First labels the normalizer reads as a reversed domain (a package name), as src/domain/normalizer.ts lists them. */
const REVERSED_DOMAIN_LABELS = new Set(['com', 'org', 'net', 'edu', 'gov', 'io']);

const variableKinds = {
  integer: fc.integer({ min: -1e9, max: 1e9 }).map(String),
  decimal: fc.double({ min: -1e6, max: 1e6, noNaN: true }).map((x) => x.toFixed(3)),
  hex: fc.oneof(
    hexDigitsWithADigit.map((h) => `0x${h}`),
    hexDigitsWithADigit,
  ),
  uuid: fc.uuid(),
  ipv4: fc.ipV4(),
  ipv4WithPort: fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([ip, port]) => `${ip}:${port}`),
  ipv6: fc.ipV6(),
  // A dot that ends a word ends a sentence, so no generated path ends with one.
  path: fc
    .array(fc.stringMatching(/^[a-zA-Z0-9_-]{1,8}(\.[a-z0-9]{1,4})?$/), { minLength: 1, maxLength: 5 })
    .map((parts) => `/${parts.join('/')}`),
  // Quotes are how a path with spaces is written: the quoted path is one value.
  quotedPath: fc
    .array(fc.stringMatching(/^[a-zA-Z0-9_-]{1,8}( [a-zA-Z0-9_-]{1,8})?$/), { minLength: 1, maxLength: 4 })
    .map((parts) => `"/${parts.join('/')}"`),
  url: fc.webUrl().filter((url) => !/[\s"'<>]/.test(url)),
  email: fc.tuple(fc.stringMatching(/^[a-z0-9._-]{1,10}$/), fc.domain()).map(([local, domain]) => `${local}@${domain}`),
  // A name whose first label is com, org, net, edu, gov or io reads as a reversed domain (`io.com`), and stays.
  hostname: fc
    .tuple(
      fc.stringMatching(/^[a-z][a-z0-9-]{0,9}$/).filter((label) => !REVERSED_DOMAIN_LABELS.has(label)),
      fc.constantFrom('com', 'net', 'org', 'internal'),
    )
    .map(([label, tld]) => `${label}.${tld}`),
  // Any dotted name with a port is an endpoint, whatever its top-level domain.
  hostAndPort: fc.tuple(fc.domain(), fc.integer({ min: 1, max: 65535 })).map(([domain, port]) => `${domain}:${port}`),
  wwwHost: fc.stringMatching(/^[a-z][a-z0-9-]{0,9}\.[a-z]{2,8}$/).map((name) => `www.${name}`),
  blockId: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((id) => `blk_${id}`),
  size: fc
    .tuple(fc.integer({ min: 0, max: 100_000 }), fc.constantFrom('B', 'KB', 'MB', 'GB'))
    .map(([n, unit]) => `${n} ${unit}`),
  duration: fc
    .tuple(fc.integer({ min: 0, max: 100_000 }), fc.constantFrom('ms', 's', 'ns'))
    .map(([n, unit]) => `${n}${unit}`),
};
type VariableKind = keyof typeof variableKinds;
const kindNames = Object.keys(variableKinds) as VariableKind[];
const skeletonWord = fc.oneof(
  fc.stringMatching(/^[a-zA-Z]{1,10}$/),
  fc.constantFrom('user', 'for', 'from', 'port', 'at', 'Jul', 'KB', 'size', 'failed', 'key=', 'to:'),
);
/** A message skeleton: literal words and typed slots, joined by single spaces. */
const skeleton = fc.array(
  fc.oneof(
    skeletonWord.map((word) => ({ word })),
    fc.constantFrom(...kindNames).map((kind) => ({ kind })),
  ),
  {
    minLength: 1,
    maxLength: 12,
  },
);
type Part = { word: string } | { kind: VariableKind };

function fill(parts: readonly Part[], values: readonly string[]): string {
  let next = 0;
  return parts.map((part) => ('word' in part ? part.word : (values[next++] as string))).join(' ');
}

function hasLoneSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
      return true;
    }
    if (c >= 0xdc00 && c <= 0xdfff) return true;
  }
  return false;
}

function expectWellFormedResult(message: string): void {
  const { template, errorHash } = normalizeMessage(message);
  expect(template).toBe(template.trim());
  expect(template).not.toContain('  ');
  expect([...template].some((ch) => ch.charCodeAt(0) < 0x20 || ch === '\u007f')).toBe(false);
  expect(hasLoneSurrogate(template)).toBe(false);
  expect(template.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
  expect(errorHash).toMatch(/^(0|[1-9][0-9]{0,19})$/);
  expect(BigInt(errorHash) < 2n ** 64n).toBe(true);
  expect(errorHash).toBe(hashTemplate(template));
}

// ---------------------------------------------------------------------------

describe('normalizeMessage: examples from the Loghub datasets', () => {
  const sameEvent: [string, string[]][] = [
    [
      'Failed password for root from <*> port <*>',
      [
        'Failed password for root from 5.36.59.76 port 42393 ssh2',
        'Failed password for root from 195.154.37.122 port 59266 ssh2',
      ],
    ],
    [
      'Failed password for invalid user <*> from <*> port <*>',
      [
        'Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2',
        'Failed password for invalid user test9 from 52.80.34.196 port 36060 ssh2',
      ],
    ],
    ['Invalid user <*> from <*>', ['Invalid user webmaster from 173.234.31.186', 'Invalid user 0 from 5.188.10.180']],
    [
      'input_userauth_request: invalid user <*> [preauth]',
      ['input_userauth_request: invalid user chen [preauth]', 'input_userauth_request: invalid user pgadmin [preauth]'],
    ],
    [
      'pam_unix(sshd:auth): authentication failure; logname= uid=<*> euid=<*> tty=<*> ruser= rhost=<*> user=<*>',
      [
        'pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.36.59.76.dynamic-dsl-ip.omantel.net.om  user=root',
        'pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=195.154.37.122  user=uucp',
      ],
    ],
    [
      'reverse mapping checking getaddrinfo for <*> [<*>] failed - POSSIBLE BREAK-IN ATTEMPT!',
      [
        'reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!',
        'reverse mapping checking getaddrinfo for 191-210-223-172.user.vivozap.com.br [191.210.223.172] failed - POSSIBLE BREAK-IN ATTEMPT!',
      ],
    ],
    [
      'PacketResponder <*> for block <*> terminating',
      [
        'PacketResponder 1 for block blk_38865049064139660 terminating',
        'PacketResponder 0 for block blk_-6952295868487656571 terminating',
      ],
    ],
    [
      'BLOCK* ask <*> to delete <*>',
      [
        'BLOCK* ask 10.250.18.114:50010 to delete  blk_-5140072410813878235',
        'BLOCK* ask 10.251.126.5:50010 to delete  blk_-9016567407076718172 blk_-8695715290502978219 blk_167132135416677587',
      ],
    ],
    [
      'Block <*> stored as bytes in memory (estimated size <*>, free <*>)',
      [
        'Block broadcast_9_piece0 stored as bytes in memory (estimated size 5.2 KB, free 5.2 KB)',
        'Block broadcast_0_piece0 stored as bytes in memory (estimated size 93.0 B, free 317.1 KB)',
      ],
    ],
    [
      'Ido chip status changed: <*> ip=<*> v=<*> t=<*> status=<*>',
      [
        'Ido chip status changed: FF:F2:9F:16:E2:23:00:0D:60:E9:1D:DC ip=10.0.0.151 v=9 t=4 status=M Fri Jul 01 08:16:53 PDT 2005',
        'Ido chip status changed: FF:F2:9F:16:EB:27:00:0D:60:E9:14:D8 ip=10.0.2.192 v=13 t=4 status=M Thu Aug 04 15:29:45 PDT 2005',
      ],
    ],
    [
      'Received connection request <*>',
      ['Received connection request /10.10.34.11:45307', 'Received connection request /10.10.34.13:52810'],
    ],
    ['onExtend:<*>', ['onExtend:1514038530000 14 0 4', 'onExtend:1514038530000 0 0 4']],
    ['adding path spec: <*>', ['adding path spec: /mapreduce/*', 'adding path spec: /ws/*']],
    [
      '<*>() Found child <*> in scoreboard slot <*>',
      ['jk2_init() Found child 6725 in scoreboard slot 10', 'jk2_init() Found child 6726 in scoreboard slot 8'],
    ],
    [
      'ciod: generated <*> core files for program <*>',
      [
        'ciod: generated 128 core files for program /home/germann2/BGL-demo/SPaSM_mpi',
        'ciod: generated 64 core files for program /bgl/apps/swl-prep/ibm-swl/functional/sppm_chkpt/run/sppm',
      ],
    ],
  ];
  for (const [template, messages] of sameEvent) {
    it(`groups lines of one event: ${template}`, () => {
      const results = messages.map(normalizeMessage);
      for (const result of results) expect(result.template).toBe(template);
      expect(new Set(results.map((r) => r.errorHash)).size).toBe(1);
    });
  }

  const differentEvents: [string, string][] = [
    [
      'Disconnecting: Too many authentication failures for admin [preauth]',
      'Disconnecting: Too many authentication failures for root [preauth]',
    ],
    ['data store interrupt caused by dcbf.........0', 'data store interrupt caused by icbi.........0'],
    ['onReceive action: android.intent.action.SCREEN_OFF', 'onReceive action: android.intent.action.SCREEN_ON'],
    [
      'mapred.job.id is deprecated. Instead, use mapreduce.job.id',
      'mapred.tip.id is deprecated. Instead, use mapreduce.task.id',
    ],
    [
      'attempt_1445144423722_0020_m_000000_0 TaskAttempt Transitioned from NEW to UNASSIGNED',
      'attempt_1445144423722_0020_m_000000_0 TaskAttempt Transitioned from UNASSIGNED to ASSIGNED',
    ],
    ['PAM 1 more authentication failure; logname= uid=0', 'PAM 2 more authentication failures; logname= uid=0'],
    // No rule reads one program's grammar (sshd's `for <who> from`): a plain word is kept, so each account is a pattern.
    [
      'Failed password for root from 5.36.59.76 port 42393 ssh2',
      'Failed password for uucp from 195.154.37.122 port 59266 ssh2',
    ],
    [
      "Successfully started service 'sparkDriver' on port 40781.",
      "Successfully started service 'org.apache.spark.network.netty.NettyBlockTransferService' on port 36253.",
    ],
  ];
  for (const [left, right] of differentEvents) {
    it(`keeps events apart: ${left} / ${right}`, () => {
      expect(normalizeMessage(left).errorHash).not.toBe(normalizeMessage(right).errorHash);
    });
  }
});

describe('normalizeMessage: variable kinds', () => {
  const cases: [string, string][] = [
    ['retry 3 of 5 failed', 'retry <*> of <*> failed'],
    ['code 0x7fff0000 at 0xDEADBEEF', 'code <*> at <*>'],
    ['object deadbeefcafebabe freed', 'object <*> freed'],
    ['request 123e4567-e89b-12d3-a456-426614174000 done', 'request <*> done'],
    ['peer [2001:db8::1]:443 closed, fe80:: too', 'peer [<*>]:<*> closed, <*> too'],
    ['listening on 0.0.0.0:8080', 'listening on <*>'],
    ['open /var/log/syslog.1 failed', 'open <*> failed'],
    ['open C:\\Windows\\system32 failed', 'open <*> failed'],
    ['fetch https://example.com/a?b=1&c=[2] took 12 ms', 'fetch <*> took <*>'],
    ['mail to jane.doe@example.org bounced', 'mail to <*> bounced'],
    ['resolved db-3.prod.internal to 10.0.0.7', 'resolved <*> to <*>'],
    ['connect to host.example.org:443 and cdn.example.zz:80 failed', 'connect to <*> and <*> failed'],
    ['fetched api.example.io, www.example.zz', 'fetched <*>'],
    ['loaded org.example.io and com.example.tv', 'loaded org.example.io and com.example.tv'],
    // Quoted text is read word by word; a quoted value of `key=` is one value.
    ['unknown command "foo bar" from \'admin\'', 'unknown command "foo bar" from \'admin\''],
    ['"GET /v2/servers/detail?limit=5 HTTP/1.1" status: 200', '"GET <*>" status: <*>'],
    ['msg="disk is full" code=\'E 12\' ok', 'msg="<*>" code=\'<*>\' ok'],
    ["open '/Library/Application Support/x' failed", "open '<*>' failed"],
    ['copy "C:\\Program Files\\X\\y.dll" to "./a b" done', 'copy "<*>" to "<*>" done'],
    ['limits: max=10 mode=fast name = alpha', 'limits: max=<*> mode=<*> name = <*>'],
    ['job #42 in queue [12345]', 'job <*> in queue [<*>]'],
    ['started at 2024-01-05T12:34:56.789Z', 'started at <*>'],
    ['started Mon Jan 15 10:00:00 UTC 2024 ok', 'started <*> ok'],
    ['wrote 12KB in 35ms, then 3.5 MB in 2 s', 'wrote <*> in <*>, then <*> in <*>'],
    ['session opened for user alice by (uid=0)', 'session opened for user <*> by (uid=<*>)'],
    ['values 1, 2, 3 and 4,5', 'values <*> and <*>'],
    ["can't open it. Sorry!", "can't open it. Sorry!"],
    ['  tabs\tand\r\nnewlines   collapse  ', 'tabs and newlines collapse'],
    ['', ''],
  ];
  for (const [message, template] of cases) {
    it(`${JSON.stringify(message)} -> ${JSON.stringify(template)}`, () => {
      expect(templateOf(message)).toBe(template);
    });
  }

  it('keeps words a log engineer would keep: may (a verb), a single slash, dotted keys', () => {
    expect(templateOf('it may fail 3 times')).toBe('it may fail <*> times');
    expect(templateOf('read/write error on TCP/IP')).toBe('read/write error on TCP/IP');
    expect(templateOf('mapred.task.id is deprecated')).toBe('mapred.task.id is deprecated');
  });
});

describe('normalizeMessage: hash', () => {
  it('is the documented two-lane 64-bit hash of the template (reference model, any string)', () => {
    fc.assert(
      fc.property(fc.oneof(anyUtf16String, fullUnicodeString), (text) => {
        expect(hashTemplate(text)).toBe(hashReference(text));
      }),
      { numRuns: 500 },
    );
  });

  it('gives the hash of its template, whatever pieces the template was written in', () => {
    fc.assert(
      fc.property(anyMessage, (message) => {
        const { template, errorHash } = normalizeMessage(message);
        expect(errorHash).toBe(hashReference(template));
      }),
      { numRuns: 500 },
    );
  });

  it('writes any unsigned 64-bit value in decimal exactly', () => {
    const word = fc.integer({ min: 0, max: 0xffffffff });
    fc.assert(
      fc.property(word, word, (high, low) => {
        expect(uint64ToDecimal(high, low)).toBe(((BigInt(high) << 32n) | BigInt(low)).toString());
      }),
      { numRuns: 2000 },
    );
    for (const [high, low] of [
      [0, 0],
      [0, 9999],
      [0, 10_000],
      [0, 0xffffffff],
      [1, 0],
      [0xffffffff, 0xffffffff],
    ] as const) {
      expect(uint64ToDecimal(high, low)).toBe(((BigInt(high) << 32n) | BigInt(low)).toString());
    }
  });

  it('is stable across releases: known values', () => {
    // Stored error_hash values depend on these; a change here is a breaking change of every stored hash.
    expect(hashTemplate('')).toBe('12339436419682845224');
    expect(hashTemplate('<*>')).toBe('9379439114937635854');
    expect(hashTemplate('Failed password for <*> from <*> port <*>')).toBe('17175201796521068428');
  });

  it('is the same in another process', () => {
    const messages = ['Failed password for root from 5.36.59.76 port 42393 ssh2', 'x=1 é 😀 \ud800', ''];
    const script = `
      import { normalizeMessage } from ${JSON.stringify(new URL('../../src/domain/normalizer.ts', import.meta.url).href)};
      const messages = JSON.parse(process.argv[1]);
      process.stdout.write(JSON.stringify(messages.map((m) => normalizeMessage(m))));
    `;
    const output = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(messages)],
      {
        encoding: 'utf8',
        cwd: new URL('../..', import.meta.url),
      },
    );
    expect(JSON.parse(output)).toEqual(messages.map((m) => ({ ...normalizeMessage(m) })));
  });

  it('gives different templates different hashes (20,000 generated and all Loghub-like shapes)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.oneof(anyUtf16String, logLikeSpaced), { minLength: 1000, maxLength: 1000 }),
        (templates) => {
          expect(new Set(templates.map(hashTemplate)).size).toBe(templates.length);
        },
      ),
      { numRuns: 20 },
    );
    // Near neighbours: one code unit apart, or the same units reordered.
    const base = 'Failed password for <*> from <*> port <*>';
    const neighbours = new Set<string>();
    for (let i = 0; i < base.length; i++) {
      for (const c of ['a', 'b', ' ', '*', '\u0000', '\uffff'])
        neighbours.add(base.slice(0, i) + c + base.slice(i + 1));
      neighbours.add(base.slice(0, i) + base.slice(i + 1));
      neighbours.add(base.slice(0, i) + base.slice(i + 1, i + 2) + base.slice(i, i + 1) + base.slice(i + 2));
    }
    expect(new Set([...neighbours].map(hashTemplate)).size).toBe(neighbours.size);
  });
});

describe('normalizeMessage: properties', () => {
  it('never throws, on any string, and its result is well formed', () => {
    fc.assert(
      fc.property(anyMessage, (message) => {
        expectWellFormedResult(message);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on bytes decoded as UTF-8 or Latin-1', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const buffer = Buffer.from(bytes);
        expectWellFormedResult(buffer.toString('utf8'));
        expectWellFormedResult(buffer.toString('latin1'));
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on non-strings handed in by untyped callers', () => {
    const throwing = {
      toString: () => {
        throw new Error('no');
      },
    };
    for (const value of [null, undefined, 42, {}, throwing, Symbol('s')]) {
      expect(() => normalizeMessage(value as unknown as string)).not.toThrow();
    }
  });

  it('is idempotent: a template is its own template', () => {
    fc.assert(
      fc.property(anyMessage, (message) => {
        const { template, errorHash } = normalizeMessage(message);
        const again = normalizeMessage(template);
        expect(again.template).toBe(template);
        expect(again.errorHash).toBe(errorHash);
      }),
      { numRuns: 3000 },
    );
  });

  it('is idempotent on long messages whose template is cut', () => {
    fc.assert(
      fc.property(logLike, fc.integer({ min: 1, max: 3 }), (fragment, factor) => {
        if (fragment === '') return;
        const message = fragment.repeat(Math.ceil((MAX_MESSAGE_LENGTH * factor) / fragment.length));
        const { template } = normalizeMessage(message);
        expect(normalizeMessage(template).template).toBe(template);
      }),
      { numRuns: 40 },
    );
  });

  it('does not change when variables are replaced by others of the same kind', () => {
    const filled = skeleton.chain((parts) => {
      const kinds = parts.flatMap((part) => ('kind' in part ? [part.kind] : []));
      const values = fc.tuple(...kinds.map((kind) => variableKinds[kind]));
      return fc.tuple(fc.constant(parts), values, values);
    });
    fc.assert(
      fc.property(filled, ([parts, first, second]) => {
        const left = normalizeMessage(fill(parts, first));
        const right = normalizeMessage(fill(parts, second));
        expect(right.template).toBe(left.template);
        expect(right.errorHash).toBe(left.errorHash);
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps the method of a quoted HTTP request: requests differ by method, not by path or protocol', () => {
    const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS');
    const request = fc
      .tuple(method, variableKinds.path, fc.constantFrom('HTTP/1.0', 'HTTP/1.1', 'HTTP/2'))
      .map(([m, path, protocol]) => ({ method: m, message: `10.0.0.1 "${m} ${path} ${protocol}" 200` }));
    fc.assert(
      fc.property(request, request, (left, right) => {
        const a = normalizeMessage(left.message);
        const b = normalizeMessage(right.message);
        expect(a.template).toBe(`<*> "${left.method} <*>" <*>`);
        expect(a.errorHash === b.errorHash).toBe(left.method === right.method);
      }),
      { numRuns: 300 },
    );
  });

  it('never keeps a value it masks: no variable of a known kind survives in the template', () => {
    const filled = skeleton.chain((parts) => {
      const kinds = parts.flatMap((part) => ('kind' in part ? [part.kind] : []));
      return fc.tuple(fc.constant(parts), fc.tuple(...kinds.map((kind) => variableKinds[kind])));
    });
    fc.assert(
      fc.property(filled, ([parts, values]) => {
        const { template } = normalizeMessage(fill(parts, values));
        for (const value of values) expect(template).not.toContain(value);
      }),
      { numRuns: 1000 },
    );
  });

  it('depends on nothing but the message: the same message gives the same result after any other input', () => {
    fc.assert(
      fc.property(anyMessage, fc.array(anyMessage, { maxLength: 5 }), (message, others) => {
        const first = normalizeMessage(message);
        for (const other of others) normalizeMessage(other);
        expect(normalizeMessage(message)).toEqual(first);
      }),
      { numRuns: 500 },
    );
  });

  it('looks at the first MAX_MESSAGE_LENGTH code units only', () => {
    fc.assert(
      fc.property(logLikeSpaced, anyMessage, (head, tail) => {
        const prefix = head.padEnd(MAX_MESSAGE_LENGTH, 'x');
        expect(normalizeMessage(prefix + tail)).toEqual(normalizeMessage(prefix));
      }),
      { numRuns: 30 },
    );
  });

  it('finishes on 5 MB pathological inputs (the work is linear and capped)', { timeout: 60_000 }, () => {
    const inputs = [
      'a'.repeat(5e6),
      '1.'.repeat(2.5e6),
      ' '.repeat(5e6),
      '"'.repeat(5e6),
      " 'x".repeat(1.7e6),
      '"a \\'.repeat(1.25e6),
      'x='.repeat(2.5e6),
      'user '.repeat(1e6),
      'for a '.repeat(8.4e5),
      'Jul 1 KB, '.repeat(5e5),
      '1,'.repeat(2.5e6),
      '..'.repeat(2.5e6),
      'a:'.repeat(2.5e6),
      '/'.repeat(5e6),
      '<*>'.repeat(1.7e6),
      'http://'.repeat(7e5),
      '\ud800'.repeat(5e6),
      'a.b.com.'.repeat(6.3e5),
    ];
    for (const input of inputs) expectWellFormedResult(input);
  });
});

describe('normalizeLine', () => {
  /** Messages whose edges are where the scan looks past a message: quotes, `<`, `:`, `/`, `=`, `'`, `*`. */
  const edgy = fc.oneof(
    anyMessage,
    logLike.map((m) => `${m}<*`),
    logLike.map((m) => `:${m}'`),
  );
  const terminator = fc.constantFrom('\n', '\r\n');
  /** Text that changes a message's template if the scan read it as part of the message. */
  const neighbour = fc.constantFrom('=', '*>', '>', '/x', '"', "'", ':', '.', 'a', '1', '\udc00');

  it('reads nothing of the text around the line', () => {
    for (const [message, after] of [
      ['k=a', '='],
      ['x <', '*>'],
      ['see http:/', '/x'],
      ['at "/a b', '"'],
    ] as const) {
      const text = `${message}${after}`;
      expect(normalizeLine(text, 0, message.length, unitsOf(text))).toEqual(normalizeMessage(message));
      expect(normalizeLine(text, 0, message.length, unitsOf(text))).not.toEqual(normalizeMessage(text));
    }
  });

  it('gives what normalizeMessage gives for the line alone, for lines of a larger text', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(edgy, terminator), { minLength: 1, maxLength: 8 }), (lines) => {
        const text = lines.map(([line, end]) => line + end).join('');
        let start = 0;
        for (const [line, end] of lines) {
          // A message that holds a line terminator itself is sliced; its result must not differ either.
          expect(normalizeLine(text, start, start + line.length, unitsOf(text))).toEqual(normalizeMessage(line));
          start += line.length + end.length;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('gives what normalizeMessage gives for any range of any text', () => {
    fc.assert(
      fc.property(fc.oneof(edgy, neighbour), edgy, fc.oneof(edgy, neighbour), (before, message, after) => {
        const text = before + message + after;
        const start = before.length;
        expect(normalizeLine(text, start, start + message.length, unitsOf(text))).toEqual(normalizeMessage(message));
      }),
      { numRuns: 2000 },
    );
  });

  it('cuts a line longer than MAX_MESSAGE_LENGTH as normalizeMessage does', () => {
    const line = `${'abc 1 '.repeat(MAX_MESSAGE_LENGTH / 6)}xyz "q`;
    expect(line.length).toBeGreaterThan(MAX_MESSAGE_LENGTH);
    const text = `first\n${line}\nlast`;
    expect(normalizeLine(text, 6, 6 + line.length, unitsOf(text))).toEqual(normalizeMessage(line));
  });
});

describe('normalizeAsciiLine, writeHashBytes and writeTemplateBytes', () => {
  const asciiUnit = fc.integer({ min: 0, max: 127 }).map((code) => String.fromCharCode(code));
  /** The message generators with every non-ASCII code unit made ASCII, so that their rules are exercised too. */
  const asciiMessage = fc.oneof(
    fc.string({ unit: asciiUnit, maxLength: 200 }),
    fc
      .oneof(logLike, logLikeSpaced)
      .map((m) => m.replace(/[^\0-\x7f]/g, (c) => String.fromCharCode(c.charCodeAt(0) & 127))),
  );

  /** What normalizeAsciiLine, writeHashBytes and writeTemplateBytes give for `text[start, end)`, the template read back as latin1. */
  function bytePath(text: string, start: number, end: number): { template: string; errorHash: string } | undefined {
    const bytes = Buffer.from(text, 'latin1');
    const errorHash = normalizeAsciiLine(bytes, start, end);
    if (errorHash === undefined) return undefined;
    // At an odd offset in a larger buffer, so that the four-byte copies are unaligned on both sides.
    const out = new Uint8Array(3 + 20 + 3 * (end - start));
    const hashEnd = writeHashBytes(out, 3);
    expect(Buffer.from(out.subarray(3, hashEnd)).toString('latin1')).toBe(errorHash);
    const at = writeTemplateBytes(bytes, out, hashEnd);
    return { template: Buffer.from(out.subarray(hashEnd, at)).toString('latin1'), errorHash };
  }

  it('gives the template and hash normalizeLine gives, for any ASCII lines with LF or CRLF', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(asciiMessage, fc.constantFrom('\n', '\r\n')), { minLength: 1, maxLength: 8 }),
        (lines) => {
          const text = lines.map(([line, end]) => line + end).join('');
          let start = 0;
          for (const [line, end] of lines) {
            const expected = normalizeLine(text, start, start + line.length, unitsOf(text));
            // A line holding a line terminator itself is one normalizeLine slices: the byte path declines it.
            const actual = bytePath(text, start, start + line.length);
            if (actual !== undefined) expect(actual).toEqual(expected);
            else expect(/[\n\r]/.test(line)).toBe(true);
            start += line.length + end.length;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('writes the hash of the last line whether its decimal was memoized or not', () => {
    const lines = ['took 5 ms', 'user root logged in', 'took 7 ms', 'user admin logged in', 'took 9 ms'];
    const text = `${lines.join('\n')}\n`;
    for (let round = 0; round < 2; round++) {
      let start = 0;
      for (const line of lines) {
        expect(bytePath(text, start, start + line.length)).toEqual(normalizeMessage(line));
        start += line.length + 1;
      }
    }
  });

  it('cuts a template longer than MAX_MESSAGE_LENGTH where normalizeMessage does, and declines longer lines', () => {
    // `a 1 ` becomes `a <*> `: the template outgrows its line and is cut.
    const line = 'a 1 '.repeat(MAX_MESSAGE_LENGTH / 4);
    expect(line.length).toBe(MAX_MESSAGE_LENGTH);
    const text = `x\n${line}\r\ny`;
    const actual = bytePath(text, 2, 2 + line.length);
    expect(actual).toEqual(normalizeMessage(line));
    expect(actual?.template.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    expect(normalizeMessage(line).template.length).toBeGreaterThan(MAX_MESSAGE_LENGTH - 8);
    const longer = `${line}z`;
    expect(normalizeAsciiLine(Buffer.from(`${longer}\n`, 'latin1'), 0, longer.length)).toBeUndefined();
  });
});

describe('unitsOf', () => {
  it('holds the code units charCodeAt reads, lone surrogates and all, and no more', () => {
    fc.assert(
      fc.property(fc.oneof(anyUtf16String, fullUnicodeString), (text) => {
        expect(Array.from(unitsOf(text))).toEqual(Array.from({ length: text.length }, (_, i) => text.charCodeAt(i)));
      }),
      { numRuns: 1000 },
    );
  });
});
