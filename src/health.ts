/**
 * Health of a running process: components report themselves degraded while a
 * dependency is failing and ok when it recovers, so /healthz can say what is
 * wrong instead of just up or down.
 */
export type Phase = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface HealthSnapshot {
  readonly phase: Phase;
  readonly status: 'ok' | 'degraded' | 'down';
  readonly degraded: Readonly<Record<string, string>>;
}

export class Health {
  #phase: Phase = 'starting';
  readonly #degraded = new Map<string, string>();

  setPhase(phase: Phase): void {
    this.#phase = phase;
  }

  degraded(component: string, reason: string): void {
    this.#degraded.set(component, reason);
  }

  ok(component: string): void {
    this.#degraded.delete(component);
  }

  isDegraded(component: string): boolean {
    return this.#degraded.has(component);
  }

  snapshot(): HealthSnapshot {
    const down = this.#phase === 'failed' || this.#phase === 'stopped';
    return {
      phase: this.#phase,
      status: down ? 'down' : this.#degraded.size > 0 ? 'degraded' : 'ok',
      degraded: Object.fromEntries(this.#degraded),
    };
  }
}
