/**
 * Loads the labelled Loghub-2k samples from the shared datasets directory and
 * scores a grouping of their lines with grouping accuracy (GA), as defined in
 * the datasets' README.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const LOGHUB_DIR = process.env['LOGFLOW_LOGHUB_DIR'] ?? '/work/shared/datasets/loghub-2k';

export const LOGHUB_DATASETS = [
  'HDFS',
  'Hadoop',
  'Spark',
  'Zookeeper',
  'BGL',
  'Apache',
  'HealthApp',
  'OpenSSH',
] as const;

export interface LabelledDataset {
  readonly name: string;
  /** The `Content` column: the message with its header stripped. */
  readonly messages: readonly string[];
  /** `EventId` per line, original Loghub labels (Zhu et al. 2019). */
  readonly originalLabels: readonly string[];
  /** `EventId` per line, Loghub-2.0 corrected labels (Jiang et al. 2024). */
  readonly correctedLabels: readonly string[];
}

/** RFC 4180: fields may be quoted, quotes inside are doubled, quoted fields may span lines. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (quoted) {
      if (c === 34 /* " */) {
        if (text.charCodeAt(i + 1) === 34) {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += text[i];
      i++;
      continue;
    }
    if (c === 34) {
      quoted = true;
    } else if (c === 44 /* , */) {
      row.push(field);
      field = '';
    } else if (c === 10 /* \n */ || c === 13 /* \r */) {
      if (c === 13 && text.charCodeAt(i + 1) === 10) i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else {
      field += text[i];
    }
    i++;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

function readColumns(path: string, columns: readonly string[]): string[][] {
  const [header, ...rows] = parseCsv(readFileSync(path, 'utf8'));
  if (header === undefined) throw new Error(`${path} is empty`);
  const indexes = columns.map((column) => {
    const index = header.indexOf(column);
    if (index < 0) throw new Error(`${path} has no column ${column} (header: ${header.join(',')})`);
    return index;
  });
  return rows.filter((row) => row.length === header.length).map((row) => indexes.map((index) => row[index] ?? ''));
}

export function loadLoghubDataset(name: string, dir: string = LOGHUB_DIR): LabelledDataset {
  const original = readColumns(join(dir, name, `${name}_2k.log_structured.csv`), ['LineId', 'Content', 'EventId']);
  const corrected = readColumns(join(dir, name, `${name}_2k.log_structured_corrected.csv`), ['LineId', 'EventId']);
  const correctedById = new Map(corrected.map(([lineId, eventId]) => [lineId, eventId ?? '']));
  const messages: string[] = [];
  const originalLabels: string[] = [];
  const correctedLabels: string[] = [];
  for (const [lineId = '', content = '', eventId = ''] of original) {
    const correctedId = correctedById.get(lineId);
    if (correctedId === undefined) throw new Error(`${name}: line ${lineId} missing from the corrected labels`);
    messages.push(content);
    originalLabels.push(eventId);
    correctedLabels.push(correctedId);
  }
  return { name, messages, originalLabels, correctedLabels };
}

export interface GroupingScores {
  /** Grouping accuracy: the share of lines whose predicted group is exactly their true group. */
  readonly ga: number;
  /**
   * F1 of grouping (FGA, Loghub-2.0, Jiang et al. 2024): a predicted group is correct when it is exactly one true
   * group; precision is the share of predicted groups that are correct, recall the share of true groups found.
   */
  readonly fga: number;
}

/**
 * GA as the datasets' README defines it and FGA as Loghub-2.0 does. A predicted group and a true group are the same
 * set of lines iff they have the same size and every member of the predicted group carries that one true label, so
 * counting lines per (predicted, true) pair decides both without building sets.
 */
export function groupingScores(predicted: readonly string[], truth: readonly string[]): GroupingScores {
  if (predicted.length !== truth.length) throw new Error('predicted and truth differ in length');
  if (predicted.length === 0) return { ga: 1, fga: 1 };
  const truthSize = new Map<string, number>();
  const pairSize = new Map<string, Map<string, number>>();
  for (let i = 0; i < predicted.length; i++) {
    const p = predicted[i] ?? '';
    const t = truth[i] ?? '';
    truthSize.set(t, (truthSize.get(t) ?? 0) + 1);
    let byTruth = pairSize.get(p);
    if (byTruth === undefined) pairSize.set(p, (byTruth = new Map()));
    byTruth.set(t, (byTruth.get(t) ?? 0) + 1);
  }
  let correctLines = 0;
  let correctGroups = 0;
  for (const byTruth of pairSize.values()) {
    if (byTruth.size !== 1) continue;
    for (const [t, both] of byTruth) {
      if (both === truthSize.get(t)) {
        correctLines += both;
        correctGroups++;
      }
    }
  }
  const precision = correctGroups / pairSize.size;
  const recall = correctGroups / truthSize.size;
  return {
    ga: correctLines / predicted.length,
    fga: precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall),
  };
}

/** The README's trivial baseline: every whitespace-separated token containing a digit becomes `<*>`. */
export function maskDigitTokens(message: string): string {
  const tokens = message.split(/\s+/);
  for (let i = 0; i < tokens.length; i++) {
    if (/\d/.test(tokens[i] ?? '')) tokens[i] = '<*>';
  }
  return tokens.join(' ');
}
