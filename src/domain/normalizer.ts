/**
 * Message normalization: a log message becomes a template (its variable parts
 * replaced by `<*>`) and a stable 64-bit hash of that template.
 *
 * Stateless and deterministic, one global configuration: the same message
 * gives the same template and hash on any instance, in any process, after any
 * replay, whatever else was seen before. No per-dataset rules, no training.
 *
 * How: one pass over the char codes splits the message into words, single
 * spaces and punctuation, and classifies each word as it ends from the kinds
 * of characters it contains (digits, hex letters, other letters, `:` `.` `/`
 * `@` ...). A word is a variable when it
 *   - contains a digit (numbers, hex, UUIDs, IPv4, IPv6, MACs, times, dates,
 *     ids such as `blk_-123`, `#12`, `ssh2`, sizes such as `12KB`, durations);
 *   - is a path (`/a`, `./a`, `~/a`, `a/b/c`, anything with `\`) or a URL
 *     (`scheme://...` up to the next space, `"`, `<` or `>`; an absolute
 *     path with a query, `/a?x=1&y=2`, runs as far);
 *   - contains `@` between two of its characters (e-mail addresses, `obj@1f`);
 *   - is a dotted name with a port (`host.example.org:443`, any domain), a
 *     host name (see `isHostName`), or eight or more hex letters;
 *   - is the value of `key=value` or `key = value` (a quoted value whole);
 *   - follows the word `user`/`username` (the spaced form of `user=<name>`,
 *     the principal of auth, login, cron and database messages alike);
 *   - is a month, weekday or time-zone name or a unit in a run of words,
 *     commas and variables that holds a variable (`Fri Jul 01 08:16:53 PDT
 *     2005`, `5.2 KB`, `12 ms`).
 * Quoted text is read word by word like the rest: quotes are punctuation,
 * so `"GET /a HTTP/1.1"` keeps its method; a quoted path is one value, spaces
 * and all (`'/Library/Application Support/x'`). Nothing is keyed to the grammar of
 * one program's messages: a plain word is a variable for what is around it
 * only after `user` or `=`, or as a date or unit word beside a value.
 * `key:value` pairs are split at the colon so the key stays and the value is
 * classified on its own; runs of leader dots (`depth.....0`) split words too.
 * Variables separated only by spaces or commas merge into one `<*>` (a list
 * of any length is one variable). Whitespace (any kind) becomes one space,
 * none at either end.
 *
 * Safety: never throws on any string. Every loop moves forward, or rescans a
 * word a bounded number of times, and the closing-quote search remembers its
 * failure, so the work is linear in the input; messages are cut to
 * MAX_MESSAGE_LENGTH code units before templating, and a template that comes
 * out longer (a `<*>` can be longer than what it replaces) ends after the
 * last whole token that fits. Lone surrogates become U+FFFD so a template
 * survives a UTF-8 round trip unchanged. Templates normalize to themselves.
 *
 * Hash (`hashTemplate`): the template's UTF-16 code units are read in pairs
 * as little-endian 32-bit blocks k (a last odd unit alone), computed while
 * the template is written. Two independent 32-bit lanes, with different
 * seeds, constants and mixing steps:
 *   lane A (seed 0x811c9dc5): a = imul(a ^ k, 0xcc9e2d51); a ^= a >>> 15
 *   lane B (seed 0x9747b28c): b = imul(rotl(b, 13) ^ k, 0x1b873593)
 * each finished with the MurmurHash3 fmix32 avalanche after mixing in the
 * length (A ^ length, B ^ imul(length, 0x9e3779b1)). A is the high and B the
 * low half of an unsigned 64-bit integer, written in decimal. Only 32-bit
 * integer arithmetic, so every JavaScript engine computes the same value.
 * Changing any of this changes every stored error_hash.
 */

import { fmix32 } from '../core/hash.ts';

/**
 * Messages longer than this (UTF-16 code units, 64 Ki) are cut before
 * templating: the first 64 Ki identify a message's kind, and the cap bounds
 * the work per message.
 */
export const MAX_MESSAGE_LENGTH = 65_536;

export const VARIABLE = '<*>';

export interface NormalizedMessage {
  readonly template: string;
  /** Unsigned 64-bit hash of `template`, in decimal (fits ClickHouse UInt64, safe in JSON). */
  readonly errorHash: string;
}

// ---------------------------------------------------------------------------
// Character kinds: one bit each, OR-ed together over a word.

const B_DIGIT = 1;
/** a-f, A-F */
const B_HEX = 2;
/** T and Z, which appear in ISO timestamps. */
const B_TZ = 4;
/** ASCII letters other than hex letters, T and Z. */
const B_LETTER = 8;
const B_COLON = 16;
const B_DOT = 32;
const B_SLASH = 64;
const B_BACKSLASH = 128;
const B_AT = 256;
/** Other ASCII punctuation that stays inside a word: - _ # $ % & * + ~ ^ */
const B_PUNCT = 512;
const B_NON_ASCII = 1024;
const B_SPACE = 2048;
/** Ends a word and stands for itself: = , ; ( ) [ ] { } < > | ` " ' */
const B_DELIM = 4096;
const B_SURROGATE = 8192;
/** `!` and `?`: inside a word like other punctuation, but split off its end like `.` and `:`. */
const B_END_PUNCT = 16384;
/**
 * Not character kinds but facts about a word found while scanning it: a
 * `<*>` inside (a template's variable, which counts like a digit, so that a
 * template is classified as the message it came from), `..` inside, `://` inside.
 */
const B_VARIABLE = 32768;
const B_DOT_RUN = 65536;
const B_URL = 131072;

/** One entry per UTF-16 code unit, so the scan needs no range checks. */
const BITS = new Uint16Array(65536).fill(B_NON_ASCII);
for (let c = 0; c < 128; c++) {
  if (c <= 32 || c === 127) BITS[c] = B_SPACE;
  else if (c >= 48 && c <= 57) BITS[c] = B_DIGIT;
  else if ((c >= 97 && c <= 102) || (c >= 65 && c <= 70)) BITS[c] = B_HEX;
  else if (c === 84 || c === 90) BITS[c] = B_TZ;
  else if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90)) BITS[c] = B_LETTER;
  else BITS[c] = B_PUNCT;
}
for (const ch of '=,;()[]{}<>|`"\'') BITS[ch.charCodeAt(0)] = B_DELIM;
BITS[58] = B_COLON;
BITS[46] = B_DOT;
BITS[47] = B_SLASH;
BITS[92] = B_BACKSLASH;
BITS[64] = B_AT;
BITS[33] = B_END_PUNCT;
BITS[63] = B_END_PUNCT;
for (const c of [0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff]) BITS[c] = B_SPACE;
for (let c = 0x2000; c <= 0x200a; c++) BITS[c] = B_SPACE;
for (let c = 0xd800; c <= 0xdfff; c++) BITS[c] = B_NON_ASCII | B_SURROGATE;

const B_ANY_LETTER = B_LETTER | B_TZ | B_NON_ASCII;

function isWordChar(c: number): boolean {
  return ((BITS[c] as number) & (B_SPACE | B_DELIM)) === 0;
}

function isTrailingPunctuation(c: number): boolean {
  return c === 46 /* . */ || c === 58 /* : */ || c === 33 /* ! */ || c === 63 /* ? */;
}

// ---------------------------------------------------------------------------
// Keywords. A word of a possible keyword's length and first letter is hashed
// (FNV-1a) into a small open-addressing table; a hit is confirmed by comparing.

const F_USER = 1;
const F_DATE = 2;
const F_UNIT = 4;
const F_COMMA = 8;

/** The word after these names a user; user names are variables. */
const USER_WORDS = ['user', 'User', 'USER', 'username', 'Username', 'USERNAME'];
/** Month, weekday and zone names are date parts when a number sits beside them (case-sensitive: `may` is a verb). */
const DATE_WORDS = [
  'Jan',
  'Feb',
  'Mar',
  'Apr',
  'May',
  'Jun',
  'Jul',
  'Aug',
  'Sep',
  'Sept',
  'Oct',
  'Nov',
  'Dec',
  'January',
  'February',
  'March',
  'April',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
  'JAN',
  'FEB',
  'MAR',
  'APR',
  'MAY',
  'JUN',
  'JUL',
  'AUG',
  'SEP',
  'OCT',
  'NOV',
  'DEC',
  'Mon',
  'Tue',
  'Tues',
  'Wed',
  'Thu',
  'Thur',
  'Thurs',
  'Fri',
  'Sat',
  'Sun',
  'Monday',
  'Tuesday',
  'Wednesday',
  'Thursday',
  'Friday',
  'Saturday',
  'Sunday',
  'MON',
  'TUE',
  'WED',
  'THU',
  'FRI',
  'SAT',
  'SUN',
  'AM',
  'PM',
  'am',
  'pm',
  'UTC',
  'GMT',
  'Z',
  'CET',
  'CEST',
  'EET',
  'EEST',
  'WET',
  'WEST',
  'BST',
  'IST',
  'MSK',
  'JST',
  'KST',
  'HKT',
  'SGT',
  'AEST',
  'AEDT',
  'ACST',
  'AWST',
  'NZST',
  'NZDT',
  'EST',
  'EDT',
  'CST',
  'CDT',
  'MST',
  'MDT',
  'PST',
  'PDT',
  'AKST',
  'AKDT',
  'HST',
];
/**
 * Units of size, time and ratio: after a number they belong to the value (`5.2 KB` and `93 B` are one kind).
 * Case-sensitive.
 */
const UNIT_WORDS = [
  'B',
  'KB',
  'MB',
  'GB',
  'TB',
  'PB',
  'kB',
  'Kb',
  'Mb',
  'Gb',
  'KiB',
  'MiB',
  'GiB',
  'TiB',
  'PiB',
  'K',
  'M',
  'G',
  'T',
  'b',
  'kb',
  'mb',
  'gb',
  'tb',
  'byte',
  'bytes',
  'bit',
  'bits',
  'ns',
  'us',
  '\u00b5s',
  'ms',
  's',
  'sec',
  'secs',
  'second',
  'seconds',
  'min',
  'mins',
  'minute',
  'minutes',
  'h',
  'hr',
  'hrs',
  'hour',
  'hours',
  'd',
  'day',
  'days',
  '%',
];

const KEYWORD_TABLE_BITS = 11;
const KEYWORD_TABLE_SIZE = 1 << KEYWORD_TABLE_BITS;
const MAX_KEYWORD_LENGTH = 9;
const keywordSlots = new Int16Array(KEYWORD_TABLE_SIZE).fill(-1);
const keywordTexts: string[] = [];
const keywordFlagsByIndex: number[] = [];
/** 1 where some keyword has this length and first code unit: most words are ruled out without hashing. */
const keywordShapes = new Uint8Array((MAX_KEYWORD_LENGTH + 1) * 256);

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** The one hash of keyword lookups: the table is built with it and probed with it. */
function fnv1a(text: Units, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (text[i] as number), FNV_PRIME);
  return h;
}

/**
 * The code units a message is read from: those of a string (unitsOf), or the
 * bytes of an ASCII text, whose byte i is its code unit i. An index outside
 * reads undefined, which every rule treats as charCodeAt's NaN: not equal to
 * any code, false in every comparison, 0 in every bit operation.
 */
type Units = Uint8Array | Uint16Array;

/** `text[start, ...)` begins with `word`. */
function startsWith(text: Units, start: number, word: string): boolean {
  for (let i = 0; i < word.length; i++) if (text[start + i] !== word.charCodeAt(i)) return false;
  return true;
}

/** `text[start, end)` as a string: short ranges only (a top-level domain). */
function stringOf(text: Units, start: number, end: number): string {
  let out = '';
  for (let i = start; i < end; i++) out += String.fromCharCode(text[i] as number);
  return out;
}

function keywordSlot(hash: number): number {
  return (hash ^ (hash >>> KEYWORD_TABLE_BITS) ^ (hash >>> 22)) & (KEYWORD_TABLE_SIZE - 1);
}

function addKeywords(words: readonly string[], flag: number): void {
  for (const word of words) {
    if (word.length > MAX_KEYWORD_LENGTH) throw new Error(`keyword ${word} is longer than ${MAX_KEYWORD_LENGTH}`);
    let index = keywordTexts.indexOf(word);
    if (index < 0) {
      index = keywordTexts.length;
      keywordTexts.push(word);
      keywordFlagsByIndex.push(0);
      const units = Uint16Array.from({ length: word.length }, (_, i) => word.charCodeAt(i));
      let slot = keywordSlot(fnv1a(units, 0, word.length));
      while (keywordSlots[slot] !== -1) slot = (slot + 1) & (KEYWORD_TABLE_SIZE - 1);
      keywordSlots[slot] = index;
      keywordShapes[word.length * 256 + (word.charCodeAt(0) & 255)] = 1;
    }
    keywordFlagsByIndex[index] = (keywordFlagsByIndex[index] as number) | flag;
  }
}
addKeywords(USER_WORDS, F_USER);
addKeywords(DATE_WORDS, F_DATE);
addKeywords(UNIT_WORDS, F_UNIT);

function keywordFlags(text: Units, start: number, end: number): number {
  const length = end - start;
  if (length > MAX_KEYWORD_LENGTH || keywordShapes[length * 256 + ((text[start] as number) & 255)] === 0) return 0;
  let slot = keywordSlot(fnv1a(text, start, end));
  for (;;) {
    const index = keywordSlots[slot] as number;
    if (index < 0) return 0;
    const keyword = keywordTexts[index] as string;
    if (keyword.length === length && startsWith(text, start, keyword)) return keywordFlagsByIndex[index] as number;
    slot = (slot + 1) & (KEYWORD_TABLE_SIZE - 1);
  }
}

/**
 * Host names: dot-separated labels of letters, digits and hyphens whose last
 * label is a generic top-level domain (one dot suffices: `example.com`,
 * `api.example.io`) or a two-letter country code (two dots needed, so
 * `config.py` stays), except two-letter words and file extensions that end
 * dotted keys far more often than host names do (`mapred.task.id`); any name
 * whose first label is `www`. A name that starts with one of the top-level
 * domains code is named under is a reversed domain, the name of a package or
 * an application (`org.apache.hadoop.io`, `com.apple.tv`), and stays.
 */
const GENERIC_TLDS = new Set([
  'com',
  'net',
  'org',
  'edu',
  'gov',
  'mil',
  'int',
  'info',
  'biz',
  'local',
  'lan',
  'internal',
  'localdomain',
  'arpa',
  'cloud',
  'svc',
  'app',
  'dev',
  'xyz',
  'online',
  'site',
  'tech',
  'store',
  // Country codes used as generic domains, so one dot suffices.
  'io',
  'co',
  'ai',
  'me',
  'tv',
]);
const REVERSED_DOMAIN_STARTS = new Set(['com', 'org', 'net', 'edu', 'gov', 'io']);
const NOT_COUNTRY_CODES = new Set([
  'am',
  'an',
  'as',
  'at',
  'be',
  'by',
  'db',
  'do',
  'go',
  'gz',
  'id',
  'if',
  'in',
  'ip',
  'is',
  'it',
  'js',
  'my',
  'no',
  'of',
  'ok',
  'on',
  'or',
  'os',
  'py',
  'rb',
  'rs',
  'sh',
  'so',
  'to',
  'ts',
  'ui',
  'up',
  'us',
  'vm',
  'we',
  'xz',
]);

const MAX_TLD_LENGTH = Math.max(...[...GENERIC_TLDS].map((tld) => tld.length));

function isHostName(text: Units, start: number, end: number): boolean {
  let labelStart = start;
  let firstLabelEnd = -1;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = text[i] as number;
    if (c === 46) {
      if (i === labelStart) return false;
      if (dots === 0) firstLabelEnd = i;
      dots++;
      labelStart = i + 1;
    } else if (!(c === 45 || (c < 128 && (BITS[c] as number) & (B_DIGIT | B_HEX | B_TZ | B_LETTER)))) {
      return false;
    }
  }
  const tldLength = end - labelStart;
  if (dots === 0 || tldLength < 1) return false;
  if (firstLabelEnd - start === 3 && startsWith(text, start, 'www')) return true;
  if (tldLength < 2) return false;
  for (let i = labelStart; i < end; i++) {
    const c = text[i] as number;
    if (c < 97 || c > 122) return false;
  }
  // No top-level domain in the sets is longer than MAX_TLD_LENGTH, nor a reversed domain's start than 3.
  if (tldLength > MAX_TLD_LENGTH) return false;
  const tld = stringOf(text, labelStart, end);
  if (!(GENERIC_TLDS.has(tld) || (tldLength === 2 && dots >= 2 && !NOT_COUNTRY_CODES.has(tld)))) return false;
  return firstLabelEnd - start > 3 || !REVERSED_DOMAIN_STARTS.has(stringOf(text, start, firstLabelEnd));
}

/** `name.name...:port`: dot-separated labels of letters, digits and hyphens, then a colon and 1 to 5 digits. */
function isHostAndPort(text: Units, start: number, end: number): boolean {
  let colon = end - 1;
  while (colon > start && colon >= end - 6) {
    const c = text[colon] as number;
    if (c === 58) break;
    if (c < 48 || c > 57) return false;
    colon--;
  }
  if ((text[colon] as number) !== 58 || colon === end - 1) return false;
  let labelStart = start;
  let dots = 0;
  for (let i = start; i < colon; i++) {
    const c = text[i] as number;
    if (c === 46) {
      if (i === labelStart) return false;
      dots++;
      labelStart = i + 1;
    } else if (!(c === 45 || (c < 128 && (BITS[c] as number) & (B_DIGIT | B_HEX | B_TZ | B_LETTER)))) {
      return false;
    }
  }
  return dots > 0 && labelStart < colon;
}

// ---------------------------------------------------------------------------
// Token buffer. Allocated once at its largest size (every token covers at
// least one code unit of a message of at most MAX_MESSAGE_LENGTH) and reused:
// normalizeMessage never re-enters itself.

/** Literal text copied from the message: a word or punctuation. */
const T_TEXT = 1;
const T_VAR = 2;

/** Whitespace before a token: none, exactly one ' ', or anything else (written as one space). */
const GAP_NONE = 0;
const GAP_ONE_SPACE = 1;
const GAP_OTHER = 2;

const TOKEN_CAPACITY = MAX_MESSAGE_LENGTH + 2;
const kinds = new Uint8Array(TOKEN_CAPACITY);
const flags = new Uint8Array(TOKEN_CAPACITY);
const gaps = new Uint8Array(TOKEN_CAPACITY);
const starts = new Int32Array(TOKEN_CAPACITY);
const ends = new Int32Array(TOKEN_CAPACITY);

const state = {
  count: 0,
  /** The whitespace seen since the last token, to be recorded on the next one. */
  gap: GAP_NONE,
  sawDateOrUnit: false,
  sawSurrogate: false,
};

function push(kind: number, flag: number, start: number, end: number): void {
  const t = state.count;
  kinds[t] = kind;
  flags[t] = flag;
  gaps[t] = state.gap;
  starts[t] = start;
  ends[t] = end;
  state.count = t + 1;
  state.gap = GAP_NONE;
}

/** A literal word; the rules that need the words before it apply here. */
function pushLiteralWord(start: number, end: number, keyword: number): void {
  const t = state.count;
  if (t > 0 && state.gap !== GAP_NONE && kinds[t - 1] === T_TEXT && (flags[t - 1] as number) & F_USER) {
    push(T_VAR, 0, start, end);
    return;
  }
  if (keyword & (F_DATE | F_UNIT)) state.sawDateOrUnit = true;
  push(T_TEXT, keyword, start, end);
}

// ---------------------------------------------------------------------------
// Word classification.

function kindsOf(text: Units, start: number, end: number): number {
  let bits = 0;
  for (let i = start; i < end; i++) {
    const c = text[i] as number;
    if (c === 60 && isVariableAt(text, i)) {
      bits |= B_VARIABLE;
      i += 2;
      continue;
    }
    if (c === 46 && i > start && (text[i - 1] as number) === 46) bits |= B_DOT_RUN;
    bits |= BITS[c] as number;
  }
  return bits;
}

/** `<*>` at `i`. */
function isVariableAt(text: Units, i: number): boolean {
  return (text[i + 1] as number) === 42 && (text[i + 2] as number) === 62;
}

/**
 * Classifies the word `text[start, end)` (no spaces or delimiters, trailing
 * punctuation removed; `bits` is the OR of its character kinds) and pushes its
 * tokens.
 */
function classifyWord(text: Units, start: number, end: number, bits: number, keywordMask: number): void {
  if ((bits & ~(B_HEX | B_TZ | B_LETTER | B_PUNCT | B_END_PUNCT | B_NON_ASCII)) === 0) {
    // Letters only, the common case.
    if ((bits & B_ANY_LETTER) === 0 && bits & B_HEX && end - start >= 8 && countHexLetters(text, start, end) >= 8) {
      push(T_VAR, 0, start, end);
      return;
    }
    pushLiteralWord(start, end, keywordFlags(text, start, end) & keywordMask);
    return;
  }
  if (bits & (B_SLASH | B_BACKSLASH) && isPath(text, start, end, bits)) {
    push(T_VAR, 0, start, end);
    return;
  }
  // Only `a@b`: a word ending in `@` goes to the other rules, so that `@G0::@`'s template `<*>::@` is its own.
  if (bits & B_AT && (text[start] as number) !== 64 && (text[end - 1] as number) !== 64) {
    push(T_VAR, 0, start, end);
    return;
  }
  if (bits & B_DOT_RUN) {
    // Leader dots (`icache prefetch depth.......0`) and ellipses separate words.
    splitOnDotRuns(text, start, end);
    return;
  }
  if (bits & B_COLON && bits & (B_LETTER | B_NON_ASCII | B_VARIABLE)) {
    if (bits & B_DOT && isHostAndPort(text, start, end)) {
      // A dotted name with a port is an endpoint whatever its last label: one pattern, not one per host.
      push(T_VAR, 0, start, end);
      return;
    }
    splitOnColons(text, start, end);
    return;
  }
  if (bits & (B_DIGIT | B_VARIABLE)) {
    push(T_VAR, 0, start, end);
    return;
  }
  if ((bits & B_ANY_LETTER) === 0) {
    if (bits & B_HEX && end - start >= 8 && countHexLetters(text, start, end) >= 8) {
      push(T_VAR, 0, start, end);
      return;
    }
    if (bits & B_COLON && countChar(text, start, end, 58) >= 2) {
      // IPv6 written with letters only (`::`, `fe::ab`).
      push(T_VAR, 0, start, end);
      return;
    }
  }
  if (bits & B_DOT && isHostName(text, start, end)) {
    push(T_VAR, 0, start, end);
    return;
  }
  pushLiteralWord(start, end, keywordFlags(text, start, end) & keywordMask);
}

function isPath(text: Units, start: number, end: number, bits: number): boolean {
  if (bits & B_BACKSLASH) return true;
  const first = text[start] as number;
  if (first === 47) return end - start > 1;
  const second = text[start + 1] as number;
  if ((first === 46 || first === 126) && second === 47) return true;
  if (first === 46 && second === 46 && (text[start + 2] as number) === 47) return true;
  return countChar(text, start, end, 47) >= 2;
}

function countChar(text: Units, start: number, end: number, code: number): number {
  let n = 0;
  for (let i = start; i < end; i++) if ((text[i] as number) === code) n++;
  return n;
}

function countHexLetters(text: Units, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = text[i] as number;
    if (c < 128 && (BITS[c] as number) & B_HEX) n++;
  }
  return n;
}

const ALL_KEYWORDS = 0xff;
/** A piece of a word cut at colons or leader dots (`G::0`, `KB....`) is not a unit or a date on its own. */
const PIECE_KEYWORDS = ALL_KEYWORDS & ~(F_DATE | F_UNIT);

function classifyPiece(text: Units, start: number, end: number, keywordMask: number): void {
  if (end > start) classifyWord(text, start, end, kindsOf(text, start, end), keywordMask);
}

function splitOnColons(text: Units, start: number, end: number): void {
  let pieceStart = start;
  for (let i = start; i < end; i++) {
    if ((text[i] as number) === 58) {
      classifyPiece(text, pieceStart, i, PIECE_KEYWORDS);
      push(T_TEXT, 0, i, i + 1);
      pieceStart = i + 1;
    }
  }
  classifyPiece(text, pieceStart, end, PIECE_KEYWORDS);
}

function splitOnDotRuns(text: Units, start: number, end: number): void {
  let pieceStart = start;
  let i = start;
  while (i < end) {
    if ((text[i] as number) === 46 && i + 1 < end && (text[i + 1] as number) === 46) {
      let runEnd = i + 2;
      while (runEnd < end && (text[runEnd] as number) === 46) runEnd++;
      classifyPiece(text, pieceStart, i, PIECE_KEYWORDS);
      push(T_TEXT, 0, i, runEnd);
      pieceStart = runEnd;
      i = runEnd;
    } else {
      i++;
    }
  }
  classifyPiece(text, pieceStart, end, PIECE_KEYWORDS);
}

// ---------------------------------------------------------------------------
// Scanning.

function isUrlStop(c: number): boolean {
  return ((BITS[c] as number) & B_SPACE) !== 0 || c === 34 /* " */ || c === 60 /* < */ || c === 62 /* > */;
}

/** `text[start, end)`, which starts with `/`, has a `?` after its first character. */
function isPathWithQuery(text: Units, start: number, end: number): boolean {
  for (let i = start + 2; i < end; i++) if ((text[i] as number) === 63) return true;
  return false;
}

/** Scans the word starting at `start` and pushes its tokens; returns the index after it. */
function scanWord(text: Units, start: number, n: number, isValue: boolean): number {
  let bits = 0;
  let i = start;
  for (; i < n; i++) {
    const c = text[i] as number;
    const b = BITS[c] as number;
    if (b & (B_SPACE | B_DELIM | B_DOT | B_SLASH | B_SURROGATE)) {
      if (b & (B_SPACE | B_DELIM)) {
        if (c === 60 && isVariableAt(text, i)) {
          bits |= B_VARIABLE;
          i += 2;
          continue;
        }
        // An apostrophe inside a word (`can't`) belongs to it.
        if (
          c !== 39 ||
          i + 1 >= n ||
          !(isWordChar(text[i + 1] as number) || ((text[i + 1] as number) === 60 && isVariableAt(text, i + 1)))
        )
          break;
        bits |= B_PUNCT;
        continue;
      }
      if (c === 46) {
        if (i > start && (text[i - 1] as number) === 46) bits |= B_DOT_RUN;
      } else if (c === 47) {
        if ((text[i + 1] as number) === 47 && i > start && (text[i - 1] as number) === 58) bits |= B_URL;
      } else {
        state.sawSurrogate = true;
      }
    }
    bits |= b;
  }
  if (
    bits & B_URL ||
    ((bits & (B_SLASH | B_END_PUNCT)) === (B_SLASH | B_END_PUNCT) &&
      (text[start] as number) === 47 &&
      (text[i] as number) === 61 &&
      isPathWithQuery(text, start, i))
  ) {
    // A URL runs from its scheme to the next space, `"`, `<` or `>`, through its `=`, `&`, `'` and brackets; so
    // does an absolute path with a query (`/a/b?x=1&y=2`), whose pairs are its value, not keys of the message.
    while (i < n && !isUrlStop(text[i] as number)) i++;
    push(T_VAR, 0, start, i);
    return i;
  }
  // A value after `=` is a variable unless it is itself the key of the next pair (`logname= uid=0`).
  if (isValue && (text[i] as number) !== 61) {
    push(T_VAR, 0, start, i);
    return i;
  }
  // The common cases, without the general (recursive, so never inlined) classifyWord:
  // a word of letters, or a word with a digit and nothing that needs a closer look.
  if ((bits & ~(B_HEX | B_TZ | B_LETTER | B_PUNCT | B_NON_ASCII)) === 0) {
    if (bits & B_ANY_LETTER || i - start < 8) {
      pushLiteralWord(start, i, keywordFlags(text, start, i));
      return i;
    }
  } else if ((bits & ~(B_DIGIT | B_HEX | B_TZ | B_LETTER | B_PUNCT | B_NON_ASCII)) === 0) {
    push(T_VAR, 0, start, i);
    return i;
  }
  if ((bits & (B_DOT | B_COLON | B_END_PUNCT)) === 0) {
    classifyWord(text, start, i, bits, ALL_KEYWORDS);
    return i;
  }
  // Trailing sentence punctuation is not part of the value: `6.` is `<*>.`, `1.2.3.4:` is `<*>:`.
  let wordEnd = i;
  while (wordEnd > start && isTrailingPunctuation(text[wordEnd - 1] as number)) {
    // `fe80::` ends in a colon too, but two colons belong to an IPv6 address.
    if ((text[wordEnd - 1] as number) === 58 && (text[wordEnd - 2] as number) === 58) break;
    wordEnd--;
  }
  // A leading colon is not part of the value either (`]:443`); `::1` is.
  let wordStart = start;
  if ((text[start] as number) === 58 && (text[start + 1] as number) !== 58 && wordEnd - start > 1) {
    push(T_TEXT, 0, start, start + 1);
    wordStart = start + 1;
  }
  if (wordStart === start && wordEnd === i) {
    classifyWord(text, start, i, bits, ALL_KEYWORDS);
  } else {
    classifyPiece(text, wordStart, wordEnd, ALL_KEYWORDS);
    if (wordEnd < i) push(T_TEXT, 0, wordEnd, i);
  }
  return i;
}

/** A closing single quote ends a word: sentence punctuation may follow (`'x'.`), a word may not (`'x'.5`). */
function isBoundaryAfter(text: Units, i: number, n: number): boolean {
  let j = i;
  while (j < n && isTrailingPunctuation(text[j] as number)) j++;
  if (j >= n) return true;
  const c = text[j] as number;
  if (c === 60 && isVariableAt(text, j)) return false;
  return !isWordChar(c);
}

/** A path starts at `j`: `/x`, `./`, `../`, `~/` or a drive (`C:\\`). */
function startsPath(text: Units, j: number, n: number): boolean {
  if (j + 1 >= n) return false;
  const c = text[j] as number;
  const d = text[j + 1] as number;
  if (c === 47) return isWordChar(d) && d !== 47;
  if (c === 126 || c === 46) return d === 47 || (c === 46 && d === 46 && (text[j + 2] as number) === 47);
  return d === 58 && (text[j + 2] as number) === 92 && ((BITS[c] as number) & (B_HEX | B_TZ | B_LETTER)) !== 0;
}

function findClosingDouble(text: Units, from: number, n: number): number {
  for (let i = from; i < n; i++) {
    const c = text[i] as number;
    if (c === 92) i++;
    else if (c === 34) return i;
  }
  return -1;
}

function findClosingSingle(text: Units, from: number, n: number): number {
  for (let i = from; i < n; i++) {
    if ((text[i] as number) === 39 && isBoundaryAfter(text, i + 1, n)) return i;
  }
  return -1;
}

function pushQuoted(text: Units, open: number, close: number): void {
  push(T_TEXT, 0, open, open + 1);
  if (close > open + 1) {
    push(T_VAR, 0, open + 1, close);
    for (let i = open + 1; i < close; i++) {
      const c = text[i] as number;
      if (c >= 0xd800 && c <= 0xdfff) state.sawSurrogate = true;
    }
  }
  push(T_TEXT, 0, close, close + 1);
}

/** Scans the message `text[start, n)`. */
function scan(text: Units, start: number, n: number): void {
  state.count = 0;
  state.gap = GAP_NONE;
  state.sawDateOrUnit = false;
  state.sawSurrogate = false;
  let i = start;
  /** After `=` the next word is a value. */
  let valuePending = false;
  /** Once a search for a closing quote fails every later one fails too: remembering it keeps the scan linear. */
  let noClosingDouble = false;
  let noClosingSingle = false;
  while (i < n) {
    const c = text[i] as number;
    const b = BITS[c] as number;
    if (b & B_SPACE) {
      state.gap = state.gap === GAP_NONE && c === 32 ? GAP_ONE_SPACE : GAP_OTHER;
      i++;
      continue;
    }
    if ((b & B_DELIM) === 0) {
      i = scanWord(text, i, n, valuePending);
      valuePending = false;
      continue;
    }
    if (c === 60 /* < */ && isVariableAt(text, i)) {
      // A template's variable starts a word: templates normalize to themselves.
      i = scanWord(text, i, n, valuePending);
      valuePending = false;
      continue;
    }
    // A quoted value of `key=` is one value, spaces and all, and so is a quoted path (quotes are how a path
    // with spaces is written: `'/Library/Application Support/x'`). Any other quoted text is read word by word:
    // it may be a request (`"GET /a HTTP/1.1"`) whose method and protocol are its kind, not its value.
    const quotedValue = (c === 34 || c === 39) && (valuePending || startsPath(text, i + 1, n));
    if (c === 34 /* " */ && quotedValue && !noClosingDouble) {
      const close = findClosingDouble(text, i + 1, n);
      if (close >= 0) {
        pushQuoted(text, i, close);
        valuePending = false;
        i = close + 1;
        continue;
      }
      noClosingDouble = true;
    }
    if (c === 39 /* ' */ && quotedValue && !noClosingSingle) {
      const close = findClosingSingle(text, i + 1, n);
      if (close >= 0) {
        pushQuoted(text, i, close);
        valuePending = false;
        i = close + 1;
        continue;
      }
      noClosingSingle = true;
    }
    push(T_TEXT, c === 44 ? F_COMMA : 0, i, i + 1);
    valuePending = c === 61; /* = */
    i++;
  }
}

/**
 * Month, weekday and zone names and units in a run with a variable are parts
 * of one value: `Fri Jul 01 08:16:53 PDT 2005`, `5.2 KB`, `12 ms`. A run is
 * a sequence of such words, variables and commas. Applied once over the
 * whole message rather than word by word, so that the result does not depend
 * on which rule saw a variable first (templates must normalize to themselves).
 */
function applyDateAndUnitRule(): void {
  const count = state.count;
  let t = 0;
  while (t < count) {
    let hasVar = false;
    let hasWord = false;
    let u = t;
    for (; u < count; u++) {
      const kind = kinds[u];
      const flag = flags[u] as number;
      if (kind === T_VAR) hasVar = true;
      else if (kind === T_TEXT && flag & (F_DATE | F_UNIT)) hasWord = true;
      else if (!(kind === T_TEXT && flag & F_COMMA)) break;
    }
    if (hasVar && hasWord) {
      for (let v = t; v < u; v++) if (kinds[v] === T_TEXT && (flags[v] as number) & (F_DATE | F_UNIT)) kinds[v] = T_VAR;
    }
    t = u + 1;
  }
}

// ---------------------------------------------------------------------------
// Emission.

function isGluedToNext(text: Units, t: number, count: number): boolean {
  return t + 1 < count && gaps[t + 1] === GAP_NONE && isWordChar(text[starts[t + 1] as number] as number);
}

/**
 * The template as pieces, in order: a range `[pieceStarts[p], pieceEnds[p])`
 * of the message's text, or PIECE_SPACE or PIECE_VARIABLE. emit decides them;
 * templateString and writeTemplateBytes only copy them out, so the template a
 * string gets and the bytes `logflow normalize` writes come from one rule.
 * Every piece but a space covers a token, a space a gap before one.
 */
const PIECE_SPACE = -1;
const PIECE_VARIABLE = -2;
const pieceStarts = new Int32Array(2 * TOKEN_CAPACITY);
const pieceEnds = new Int32Array(2 * TOKEN_CAPACITY);
let pieceCount = 0;

/**
 * Decides the template's pieces and hashes them on the way (reading the flat
 * message, not the template); runs of literal tokens separated by single
 * spaces are one piece. A template longer than MAX_MESSAGE_LENGTH (variables
 * can be longer than what they replace) ends after the last whole token that
 * fits, so that it is still its own template. Returns the template's length.
 */
function emit(text: Units): number {
  const count = state.count;
  let length = 0;
  let pieces = 0;
  let runStart = -1;
  let runEnd = -1;
  let t = 0;
  hashStart();
  for (;;) {
    let kind = 0;
    let start = 0;
    let end = 0;
    let gap = GAP_NONE;
    let full = false;
    if (t < count) {
      kind = kinds[t] as number;
      start = starts[t] as number;
      end = ends[t] as number;
      gap = t > 0 ? (gaps[t] as number) : GAP_NONE;
      if (kind === T_TEXT && (gap === GAP_NONE ? runEnd === start : gap === GAP_ONE_SPACE && runEnd + 1 === start)) {
        if (length + end - runStart <= MAX_MESSAGE_LENGTH) {
          runEnd = end;
          t++;
          continue;
        }
        full = true;
      }
    }
    if (runStart >= 0) {
      pieceStarts[pieces] = runStart;
      pieceEnds[pieces] = runEnd;
      pieces++;
      length += runEnd - runStart;
      hashRange(text, runStart, runEnd);
      runStart = -1;
      runEnd = -1;
    }
    if (t >= count || full) break;
    const tokenLength = (gap === GAP_NONE ? 0 : 1) + (kind === T_VAR ? VARIABLE.length : end - start);
    if (length + tokenLength > MAX_MESSAGE_LENGTH) break;
    if (gap !== GAP_NONE) {
      pieceStarts[pieces] = PIECE_SPACE;
      pieces++;
      length++;
      hashUnit(32);
    }
    if (kind === T_VAR) {
      // A run of variables separated only by spaces and commas is one variable,
      // except a last one glued to the word after it (`5 6:x`): merged, it would
      // join that word, and the template would not be its own template.
      let lastVar = t;
      for (let u = t + 1; u < count; u++) {
        const k = kinds[u];
        if (k === T_VAR) {
          if (isGluedToNext(text, u, count)) break;
          lastVar = u;
        } else if (!(k === T_TEXT && (flags[u] as number) & F_COMMA)) {
          break;
        }
      }
      pieceStarts[pieces] = PIECE_VARIABLE;
      pieces++;
      length += VARIABLE.length;
      hashUnit(VARIABLE_0);
      hashUnit(VARIABLE_1);
      hashUnit(VARIABLE_2);
      t = lastVar + 1;
      continue;
    }
    runStart = start;
    runEnd = end;
    t++;
  }
  pieceCount = pieces;
  return length;
}

/** The template emit decided, as a string. */
function templateString(text: string): string {
  let out = '';
  for (let p = 0; p < pieceCount; p++) {
    const start = pieceStarts[p] as number;
    if (start >= 0) out += text.slice(start, pieceEnds[p] as number);
    else out += start === PIECE_SPACE ? ' ' : VARIABLE;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Hashing (see the file comment). The template is hashed in pieces as it is
// written; a piece may end between the two units of a block, so the odd unit
// waits in `pendingUnit` for the next piece.

const SEED_A = 0x811c9dc5;
const SEED_B = 0x9747b28c;
const MULTIPLIER_A = 0xcc9e2d51;
const MULTIPLIER_B = 0x1b873593;

let laneA = 0;
let laneB = 0;
let pendingUnit = -1;
const VARIABLE_0 = VARIABLE.charCodeAt(0);
const VARIABLE_1 = VARIABLE.charCodeAt(1);
const VARIABLE_2 = VARIABLE.charCodeAt(2);

function hashStart(): void {
  laneA = SEED_A;
  laneB = SEED_B;
  pendingUnit = -1;
}

function hashRange(text: Units, start: number, end: number): void {
  let a = laneA;
  let b = laneB;
  let i = start;
  if (pendingUnit >= 0 && i < end) {
    const k = pendingUnit | ((text[i] as number) << 16);
    a = Math.imul(a ^ k, MULTIPLIER_A);
    a ^= a >>> 15;
    b = Math.imul(((b << 13) | (b >>> 19)) ^ k, MULTIPLIER_B);
    pendingUnit = -1;
    i++;
  }
  for (; i + 1 < end; i += 2) {
    const k = (text[i] as number) | ((text[i + 1] as number) << 16);
    a = Math.imul(a ^ k, MULTIPLIER_A);
    a ^= a >>> 15;
    b = Math.imul(((b << 13) | (b >>> 19)) ^ k, MULTIPLIER_B);
  }
  if (i < end) pendingUnit = text[i] as number;
  laneA = a;
  laneB = b;
}

/** One code unit of a constant: `hashRange` reads a message's units. */
function hashUnit(unit: number): void {
  if (pendingUnit < 0) {
    pendingUnit = unit;
    return;
  }
  const k = pendingUnit | (unit << 16);
  const a = Math.imul(laneA ^ k, MULTIPLIER_A);
  laneA = a ^ (a >>> 15);
  laneB = Math.imul(((laneB << 13) | (laneB >>> 19)) ^ k, MULTIPLIER_B);
  pendingUnit = -1;
}

function hashFinish(length: number): string {
  let a = laneA;
  let b = laneB;
  if (pendingUnit >= 0) {
    a = Math.imul(a ^ pendingUnit, MULTIPLIER_A);
    a ^= a >>> 15;
    b = Math.imul(((b << 13) | (b >>> 19)) ^ pendingUnit, MULTIPLIER_B);
  }
  const high = fmix32(a ^ length);
  const low = fmix32(b ^ Math.imul(length, 0x9e3779b1));
  const slot = (high ^ low) & (DECIMAL_MEMO_SIZE - 1);
  lastSlot = slot;
  if (memoHigh[slot] === high && memoLow[slot] === low) return memoText[slot] as string;
  const decimal = uint64ToDecimal(high, low);
  memoHigh[slot] = high;
  memoLow[slot] = low;
  memoText[slot] = decimal;
  const at = slot * MAX_DECIMAL_LENGTH;
  for (let i = 0; i < decimal.length; i++) memoDigits[at + i] = decimal.charCodeAt(i);
  memoDigitCounts[slot] = decimal.length;
  return decimal;
}

/**
 * Writes the errorHash of the last normalizeAsciiLine (its ASCII digits) into `out` at `at` and returns the index
 * after it; `out` must have room for 20 bytes. The digits are copied from the memo's bytes: reading a decimal
 * string made by concatenation with charCodeAt cost as much as hashing.
 */
export function writeHashBytes(out: Uint8Array, at: number): number {
  const count = memoDigitCounts[lastSlot] as number;
  const from = lastSlot * MAX_DECIMAL_LENGTH;
  for (let i = 0; i < count; i++) out[at + i] = memoDigits[from + i] as number;
  return at + count;
}

/** Unsigned 64-bit hash of a string's UTF-16 code units, in decimal: the `errorHash` of a template. */
export function hashTemplate(template: string): string {
  hashStart();
  hashRange(messageUnitsOf(template), 0, template.length);
  return hashFinish(template.length);
}

/**
 * Writing 64 bits in decimal costs more than hashing a short template, and a
 * stream repeats few templates: the last decimal written for each of 4096
 * slots is kept (a memo of a pure function, invisible in the results).
 */
const DECIMAL_MEMO_SIZE = 4096;
const memoHigh = new Float64Array(DECIMAL_MEMO_SIZE).fill(-1);
const memoLow = new Float64Array(DECIMAL_MEMO_SIZE);
const memoText: string[] = new Array<string>(DECIMAL_MEMO_SIZE).fill('');
/** 2^64 - 1 has 20 digits. */
const MAX_DECIMAL_LENGTH = 20;
/** Each slot's decimal as bytes, for writeHashBytes. */
const memoDigits = new Uint8Array(DECIMAL_MEMO_SIZE * MAX_DECIMAL_LENGTH);
const memoDigitCounts = new Uint8Array(DECIMAL_MEMO_SIZE);
/** The memo slot of the last hashFinish. */
let lastSlot = 0;

const DIGITS4: string[] = [];
const DIGITS4_PADDED: string[] = [];
for (let i = 0; i < 10_000; i++) {
  DIGITS4.push(String(i));
  DIGITS4_PADDED.push(String(i).padStart(4, '0'));
}

/**
 * Decimal digits of `high * 2^32 + low` (both unsigned 32-bit) without BigInt,
 * four digits at a time: 2^32 = 429496 * 10^4 + 7296 keeps every
 * intermediate below 2^53, so the doubles stay exact.
 */
export function uint64ToDecimal(high: number, low: number): string {
  const middle = high * 7296 + low;
  let quotient = Math.floor(middle / 10_000);
  const d0 = middle - quotient * 10_000;
  let upper = high * 429_496 + quotient;
  if (upper === 0) return DIGITS4[d0] as string;
  quotient = Math.floor(upper / 10_000);
  const d1 = upper - quotient * 10_000;
  upper = quotient;
  if (upper === 0) return (DIGITS4[d1] as string) + (DIGITS4_PADDED[d0] as string);
  quotient = Math.floor(upper / 10_000);
  const d2 = upper - quotient * 10_000;
  upper = quotient;
  if (upper === 0) return (DIGITS4[d2] as string) + (DIGITS4_PADDED[d1] as string) + (DIGITS4_PADDED[d0] as string);
  quotient = Math.floor(upper / 10_000);
  const d3 = upper - quotient * 10_000;
  upper = quotient;
  const tail = (DIGITS4_PADDED[d2] as string) + (DIGITS4_PADDED[d1] as string) + (DIGITS4_PADDED[d0] as string);
  if (upper === 0) return (DIGITS4[d3] as string) + tail;
  return (DIGITS4[upper] as string) + (DIGITS4_PADDED[d3] as string) + tail;
}

// ---------------------------------------------------------------------------

/** Replaces unpaired UTF-16 surrogates with U+FFFD; returns the input itself when there are none. */
function toWellFormed(text: string): string {
  const n = text.length;
  let out = '';
  let from = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < n) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    out += text.slice(from, i) + '\ufffd';
    from = i + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}

/** Scans the message `text[start, end)` and leaves its template in the pieces; returns the template's length. */
function piecesOf(text: Units, start: number, end: number): number {
  scan(text, start, end);
  if (state.sawDateOrUnit) applyDateAndUnitRule();
  return emit(text);
}

/** The template of `text[start, end)`, whose code units are `units`. */
function templateOf(text: string, units: Units, start: number, end: number): string {
  piecesOf(units, start, end);
  return templateString(text);
}

/**
 * The code units of `text`, in an array exactly as long (reading past it must
 * read undefined, as charCodeAt reads NaN): indexing a typed array is cheaper
 * than charCodeAt, which dispatches on the string's representation at every
 * call.
 */
export function unitsOf(text: string): Uint16Array {
  const units = new Uint16Array(text.length);
  // A text (a block of lines) is long: Buffer's UTF-16 write copies it natively, where the platform's byte order
  // is the little-endian order it writes.
  if (LITTLE_ENDIAN) Buffer.from(units.buffer).write(text, 'utf16le');
  else copyUnits(text, units);
  return units;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reused by messageUnitsOf: a view of it costs no allocation of memory. */
const messageUnits = new Uint16Array(MAX_MESSAGE_LENGTH);

/** unitsOf for one message at a time: valid until the next call. */
function messageUnitsOf(text: string): Uint16Array {
  const n = text.length;
  return copyUnits(text, n <= MAX_MESSAGE_LENGTH ? messageUnits.subarray(0, n) : new Uint16Array(n));
}

function copyUnits(text: string, units: Uint16Array): Uint16Array {
  for (let i = 0; i < units.length; i++) units[i] = text.charCodeAt(i);
  return units;
}

function asText(message: unknown): string {
  if (typeof message === 'string') return message;
  if (message === null || message === undefined) return '';
  try {
    return String(message);
  } catch {
    return '';
  }
}

export function normalizeMessage(message: string): NormalizedMessage {
  let text = asText(message);
  if (text.length > MAX_MESSAGE_LENGTH) text = text.slice(0, MAX_MESSAGE_LENGTH);
  return normalizeSpan(text, messageUnitsOf(text), 0, text.length);
}

/**
 * `normalizeMessage(text.slice(start, end))` without the slice, for a line of
 * a larger text (`logflow normalize` reads blocks of lines): reading a flat
 * string is faster than reading a slice of one, and no string is made per
 * line. The scan reads one code unit on either side of a message (an absent
 * one reads as NaN), and a line terminator there is read as NaN is: both are
 * neither a word character nor any code a rule compares with. Any other
 * neighbour, or a message longer than MAX_MESSAGE_LENGTH, is sliced; a test
 * in test/domain/normalizer.test.ts checks both against normalizeMessage.
 * `units` are `unitsOf(text)`, made once for all the lines of one text (a
 * copy of the whole text per line would cost more than normalizing it).
 */
export function normalizeLine(text: string, start: number, end: number, units: Uint16Array): NormalizedMessage {
  if (!isLineAlone(units, start, end)) return normalizeMessage(text.slice(start, end));
  return normalizeSpan(text, units, start, end);
}

/** The message `text[start, end)` can be normalized where it lies (see normalizeLine). */
function isLineAlone(text: Units, start: number, end: number): boolean {
  return (
    end - start <= MAX_MESSAGE_LENGTH &&
    (start === 0 || (text[start - 1] as number) === 10) &&
    (end === text.length || isLineTerminator(text[end] as number))
  );
}

/**
 * normalizeLine's errorHash for the line `[start, end)` of an ASCII text given
 * as its bytes (byte i is code unit i), without making the text or the
 * template: the template is kept, as ranges of the bytes, until
 * writeTemplateBytes writes it. Undefined for a line normalizeLine would slice
 * (a long one): normalizeLine it instead. An ASCII message has no
 * surrogates, so it is its own well-formed text.
 */
export function normalizeAsciiLine(text: Uint8Array, start: number, end: number): string | undefined {
  if (!isLineAlone(text, start, end)) return undefined;
  return hashFinish(piecesOf(text, start, end));
}

/**
 * Writes the template of the last normalizeAsciiLine into `out` at `at` and
 * returns the index after it: its UTF-8 bytes, the text's ranges copied from
 * `bytes`, the text's own bytes (an ASCII text's code unit i is its byte i).
 * The template takes at most 3 bytes per code unit of its line (a one-unit
 * variable becomes `<*>`), and `out` must have that room.
 */
export function writeTemplateBytes(text: Uint8Array, out: Uint8Array, at: number): number {
  const from = textView.of(text);
  const to = outView.of(out);
  for (let p = 0; p < pieceCount; p++) {
    const start = pieceStarts[p] as number;
    if (start >= 0) {
      const end = pieceEnds[p] as number;
      // Four bytes at a time: a piece is a run of words, tens of bytes, and a byte loop cost twice as much.
      let i = start;
      for (; i + 4 <= end; i += 4, at += 4) to.setUint32(at, from.getUint32(i, true), true);
      for (; i < end; i++) out[at++] = text[i] as number;
    } else if (start === PIECE_SPACE) {
      out[at++] = 32;
    } else {
      out[at++] = VARIABLE_0;
      out[at++] = VARIABLE_1;
      out[at++] = VARIABLE_2;
    }
  }
  return at;
}

/**
 * The DataView of the last array it was asked for: a block's lines share their text and output, so that a view is
 * made once per block, not per line.
 */
class LastView {
  #bytes: Uint8Array | undefined;
  #view: DataView = new DataView(new ArrayBuffer(0));

  of(bytes: Uint8Array): DataView {
    if (bytes !== this.#bytes) {
      this.#bytes = bytes;
      this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    return this.#view;
  }
}

const textView = new LastView();
const outView = new LastView();

function isLineTerminator(c: number): boolean {
  return c === 10 || c === 13;
}

/**
 * The message `text[start, end)`, at most MAX_MESSAGE_LENGTH long, whose neighbours are as normalizeLine says;
 * `units` are the text's.
 */
function normalizeSpan(text: string, units: Uint16Array, start: number, end: number): NormalizedMessage {
  let template = templateOf(text, units, start, end);
  if (state.sawSurrogate) {
    // Templates are written as UTF-8; a lone surrogate would come back as U+FFFD and hash differently.
    const message = text.slice(start, end);
    const wellFormed = toWellFormed(message);
    if (wellFormed !== message) template = templateOf(wellFormed, messageUnitsOf(wellFormed), 0, wellFormed.length);
  }
  return { template, errorHash: hashFinish(template.length) };
}
