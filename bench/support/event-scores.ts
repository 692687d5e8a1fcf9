/**
 * Event-level scoring of alert openings against labelled incidents, the
 * per-series metric of the detector comparisons (bench/scenarios/detect-vs-gaussian.bench.ts).
 *
 * - An incident is found when an opening of its direction (a spike for a
 *   rise; a drop or a silence for a fall) falls between its start and
 *   `toleranceMs` after its end.
 * - An opening is false when it falls in no incident's span (start to end
 *   plus tolerance), whatever its direction. One inside an incident's span
 *   that does not find it (the other direction, or a second opening) is
 *   neither: it is about a real incident, and counting it either way would
 *   let a detector gain or lose by how often it re-opens.
 * - precision = found / (found + false), so each incident counts once however
 *   many openings it gets; recall = found / incidents; F1 their harmonic mean,
 *   0 when nothing is found.
 */
export type Direction = 'up' | 'down';

export interface LabelledIncident {
  /** Epoch ms, inclusive. */
  readonly start: number;
  /** Epoch ms, exclusive: the first window after the incident. */
  readonly end: number;
  readonly direction: Direction;
}

export interface ScoredOpening {
  readonly at: number;
  readonly direction: Direction;
}

export interface EventScore {
  readonly incidents: number;
  readonly found: number;
  readonly openings: number;
  readonly falseOpenings: number;
  /** NaN when there was neither a found incident nor a false opening. */
  readonly precision: number;
  /** NaN when there were no incidents. */
  readonly recall: number;
  /** NaN when there were no incidents. */
  readonly f1: number;
}

/** The direction of an alert rule of src/domain/anomaly.ts. */
export function directionOf(kind: string): Direction {
  if (kind === 'spike') return 'up';
  if (kind === 'drop' || kind === 'silence') return 'down';
  throw new RangeError(`no direction for alert kind ${JSON.stringify(kind)}`);
}

export function scoreEvents(
  openings: readonly ScoredOpening[],
  incidents: readonly LabelledIncident[],
  toleranceMs: number,
): EventScore {
  if (!(toleranceMs >= 0) || !Number.isFinite(toleranceMs))
    throw new RangeError(`toleranceMs must be a finite number >= 0, got ${toleranceMs}`);
  for (const incident of incidents)
    if (!(incident.end > incident.start))
      throw new RangeError(`an incident must end after it starts, got ${incident.start}..${incident.end}`);
  const within = (at: number, incident: LabelledIncident) => at >= incident.start && at <= incident.end + toleranceMs;
  const found = new Set<LabelledIncident>();
  let falseOpenings = 0;
  for (const opening of openings) {
    const matched = incidents.filter(
      (incident) => incident.direction === opening.direction && within(opening.at, incident),
    );
    for (const incident of matched) found.add(incident);
    if (matched.length === 0 && !incidents.some((incident) => within(opening.at, incident))) falseOpenings += 1;
  }
  const precision = found.size + falseOpenings === 0 ? Number.NaN : found.size / (found.size + falseOpenings);
  const recall = incidents.length === 0 ? Number.NaN : found.size / incidents.length;
  const f1 =
    incidents.length === 0 ? Number.NaN : found.size === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return {
    incidents: incidents.length,
    found: found.size,
    openings: openings.length,
    falseOpenings,
    precision,
    recall,
    f1,
  };
}
