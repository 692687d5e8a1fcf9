/**
 * The shape every source, sink and store adapter has (the Vector / Redpanda
 * Connect habit): validated config at construction, a health check the
 * process exposes, and a close that releases what it holds. Batching,
 * retries and acknowledgement belong to the engine, not to components.
 */
export interface HealthCheck {
  readonly ok: boolean;
  readonly detail?: string;
}

export interface Component {
  readonly name: string;
  health(): Promise<HealthCheck>;
  close(): Promise<void>;
}

/** Runs a probe and turns a throw into a failed check, so a health endpoint never throws. */
export async function probe(check: () => Promise<unknown>): Promise<HealthCheck> {
  try {
    await check();
    return { ok: true };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  }
}
