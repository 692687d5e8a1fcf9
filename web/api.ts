/** The dashboard's client for /api/v1 (see notes on the HTTP API contract). */

export type Role = 'viewer' | 'operator' | 'admin';
const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
export function hasRole(role: Role, needed: Role): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[needed];
}

export interface Me {
  readonly name: string;
  readonly role: Role;
}
export interface Page<T> {
  readonly items: readonly T[];
  readonly nextCursor: string | null;
}

export interface LogRow {
  readonly logId: string;
  readonly timestamp: string;
  readonly service: string;
  readonly environment: string;
  readonly level: string;
  readonly message: string;
  readonly template: string | null;
  readonly errorHash: string | null;
  readonly traceId: string | null;
  readonly host: string | null;
  readonly attributes?: Readonly<Record<string, string>>;
}
export interface RatePoint {
  readonly t: string;
  readonly total: number;
  readonly errors: number;
  readonly rate: number;
}
export interface ErrorRate {
  readonly step: number;
  readonly series: readonly { readonly service: string; readonly points: readonly RatePoint[] }[];
}
export interface TopError {
  readonly errorHash: string;
  readonly template: string;
  readonly service: string;
  readonly level: string;
  readonly count: number;
  readonly lastSeen: string;
}
export interface Pattern {
  readonly errorHash: string;
  readonly template: string;
  readonly service: string;
  readonly occurrences: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly hasEmbedding: boolean;
}
export interface PatternDetail {
  readonly pattern: Pattern;
  readonly series: readonly { readonly t: string; readonly count: number }[];
  readonly similar: readonly {
    readonly errorHash: string;
    readonly template: string;
    readonly service: string;
    readonly score: number;
  }[];
}
export interface Alert {
  readonly id: number;
  readonly dedupKey: string;
  readonly rule: string;
  readonly alertType: string;
  readonly status: 'pending' | 'open' | 'acknowledged' | 'resolved';
  readonly severity: string;
  readonly service: string | null;
  readonly environment: string | null;
  readonly level: string | null;
  readonly errorHash: string | null;
  readonly score: number | null;
  readonly observed: number | null;
  readonly expected: number | null;
  readonly windowStart: string | null;
  readonly windowEnd: string | null;
  readonly description: string | null;
  readonly llmAnalysis: string | null;
  readonly suggestedActions: readonly string[];
  readonly openedAt: string | null;
  readonly acknowledgedAt: string | null;
  readonly acknowledgedBy: string | null;
  readonly resolvedAt: string | null;
  readonly createdAt: string;
}
export interface Silence {
  readonly id: number;
  readonly reason: string;
  readonly expiresAt: string;
  readonly rule?: string | null;
  readonly service?: string | null;
  readonly environment?: string | null;
  readonly level?: string | null;
  readonly dedupKey?: string | null;
  readonly createdBy?: string | null;
}
export interface PatternSeverity {
  readonly errorHash: string;
  readonly template: string;
  readonly severity: string;
  readonly occurrences: number;
  readonly reason?: string;
}
export interface ReportSummary {
  readonly reportDate: string;
  readonly summary?: string;
  readonly totalLogs?: number;
  readonly totalErrors?: number;
  readonly errorRate?: number;
  readonly anomaliesDetected?: number;
  readonly producedBy?: string;
}
export interface Report {
  readonly id: number;
  readonly reportDate: string;
  readonly producedBy: string;
  readonly modelUsed: string | null;
  readonly summary: string;
  readonly keyIssues: readonly string[];
  readonly probableCauses: readonly string[];
  readonly recommendations: readonly string[];
  readonly patternSeverity: readonly PatternSeverity[];
  readonly statistics: Readonly<Record<string, unknown>>;
  readonly totalLogs: number;
  readonly totalErrors: number;
  readonly errorRate: number;
  readonly uniquePatterns: number;
  readonly anomaliesDetected: number;
  readonly tokensUsed: number;
  readonly generatedAt: string;
}
export interface AnalysisJob {
  readonly id: number;
  readonly status: string;
  readonly error?: string | null;
}
export interface Service {
  readonly name: string;
  readonly displayName: string;
  readonly description: string | null;
  readonly ownerTeam: string | null;
  readonly tier: string;
  readonly monitoringEnabled: boolean;
  readonly alertingEnabled: boolean;
  readonly sensitivity: number;
  readonly minCount: number;
  readonly silenceDetection: boolean;
  readonly retentionDays: number;
  readonly tags: readonly string[];
}
export interface Preferences {
  readonly userId: string;
  readonly timezone: string;
  readonly theme: 'light' | 'dark' | 'system';
  readonly defaultFilters: Readonly<Record<string, unknown>>;
  readonly notifications: Readonly<Record<string, unknown>>;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const KEY_STORAGE = 'logflow.apiKey';

export function storedKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}
export function storeKey(key: string | null): void {
  if (key === null) localStorage.removeItem(KEY_STORAGE);
  else localStorage.setItem(KEY_STORAGE, key);
}

type Query = Readonly<Record<string, string | number | null | undefined>>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export class Api {
  /** Called on any 401 so the app can return to the login form. */
  onUnauthorized: () => void = () => {};

  constructor(private key: string) {}

  async request<T>(method: string, path: string, options: { query?: Query; body?: unknown } = {}): Promise<T> {
    const url = new URL(`/api/v1${path}`, location.origin);
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { Authorization: `Bearer ${this.key}`, Accept: 'application/json' };
    const init: RequestInit = { method, headers };
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    let response: Response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      throw new ApiError(
        0,
        'network',
        `cannot reach the server (${error instanceof Error ? error.message : String(error)})`,
      );
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let payload: unknown = null;
    try {
      payload = text === '' ? null : JSON.parse(text);
    } catch {
      throw new ApiError(response.status, 'bad_response', `unexpected non-JSON response (${response.status})`);
    }
    if (!response.ok) throw this.#failure(response.status, payload);
    return payload as T;
  }

  /** The API's error body as an ApiError; a 401 also signs out. */
  #failure(status: number, payload: unknown): ApiError {
    const code = isRecord(payload) && typeof payload['error'] === 'string' ? payload['error'] : 'http_error';
    let message =
      isRecord(payload) && typeof payload['message'] === 'string' ? payload['message'] : `request failed (${status})`;
    if (isRecord(payload) && Array.isArray(payload['details']) && payload['details'].length > 0) {
      const details = payload['details'].map((d) =>
        isRecord(d) ? `${String(d['path'] ?? d['field'] ?? '')} ${String(d['message'] ?? '')}`.trim() : String(d),
      );
      message += `: ${details.join('; ')}`;
    }
    if (status === 401) this.onUnauthorized();
    return new ApiError(status, code, message);
  }

  /**
   * Opens a server-sent event stream (the live tail) with fetch, since
   * EventSource cannot send the Authorization header. The caller reads the
   * body and aborts `signal` to leave.
   */
  async stream(
    path: string,
    query: URLSearchParams,
    options: { readonly lastEventId: string | undefined; readonly signal: AbortSignal },
  ): Promise<ReadableStream<Uint8Array>> {
    const url = new URL(`/api/v1${path}`, location.origin);
    url.search = query.toString();
    const headers: Record<string, string> = { Authorization: `Bearer ${this.key}`, Accept: 'text/event-stream' };
    if (options.lastEventId !== undefined) headers['Last-Event-ID'] = options.lastEventId;
    let response: Response;
    try {
      response = await fetch(url, { headers, signal: options.signal, cache: 'no-store' });
    } catch (error) {
      if (options.signal.aborted) throw error;
      throw new ApiError(
        0,
        'network',
        `cannot reach the server (${error instanceof Error ? error.message : String(error)})`,
      );
    }
    if (!response.ok || response.body === null) {
      const text = await response.text();
      let payload: unknown = null;
      try {
        payload = JSON.parse(text);
      } catch {
        // Not our error shape: the status alone says what failed.
      }
      throw this.#failure(response.status, payload);
    }
    return response.body;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, query === undefined ? {} : { query });
  }

  /** A list endpoint's response, checked to have the shape the pages rely on. */
  async page<T>(path: string, query?: Query): Promise<Page<T>> {
    const result = await this.get<unknown>(path, query);
    if (!isRecord(result) || !Array.isArray(result['items']))
      throw new ApiError(200, 'bad_response', `${path}: response has no items`);
    const next = result['nextCursor'];
    return { items: result['items'] as T[], nextCursor: typeof next === 'string' ? next : null };
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, { body });
  }
  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body });
  }
  delete(path: string): Promise<void> {
    return this.request<void>('DELETE', path);
  }
}

export function enc(segment: string): string {
  return encodeURIComponent(segment);
}
