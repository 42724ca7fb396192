import { randomUUID } from 'node:crypto';
import type { AuditEventInput, StoredEvent } from './chain.js';
import { AuditClientError } from './errors.js';

export interface AuditClientOptions {
  /** Base URL of the store, e.g. `http://audit-store:8080`. */
  url: string;
  /**
   * Returns the bearer token for each request (projected tokens rotate). Leave it out when
   * the caller authenticates with its SVID over SPIFFE mTLS (a `fetch` with a SPIFFE agent).
   */
  token?: () => string | Promise<string>;
  /** Events held in memory before write() waits (backpressure). Default 10,000. */
  bufferSize?: number;
  /** Events per batch request, at most 1000. Default 500. */
  batchSize?: number;
  /** Flush a partial batch after this long. Default 1000 ms. */
  flushIntervalMs?: number;
  /** Backoff base and cap for retries on 5xx, 429 and network errors. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** A request not answered in this long is abandoned and retried. Default 30 s. */
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
}

/**
 * Filters of a query (`GET /api/v1/audit/events`): every field given must match exactly;
 * `since` (inclusive) and `until` (exclusive) are RFC 3339 date-times.
 */
export interface AuditEventFilter {
  event_type?: string;
  event_category?: string;
  event_outcome?: string;
  severity?: string;
  correlation_id?: string;
  actor_id?: string;
  resource_type?: string;
  resource_id?: string;
  namespace?: string;
  written_by?: string;
  /** Delegated decisions for this person (the verified `on_behalf_of`, else the event's). */
  person?: string;
  /** Decisions where this agent acted (the outermost actor of the chain). */
  agent?: string;
  /** Events of this transaction (`event_data.txn`, or the `correlation_id`). */
  txn?: string;
  since?: string;
  until?: string;
}

/** A query: the filters, and paging. */
export interface AuditQuery extends AuditEventFilter {
  /** Events per page, 1..1000. Default 50 (the store's). */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

/** One page of a query, newest event first. */
export interface AuditPage {
  events: StoredEvent[];
  /** Pass as `cursor` for the next page; undefined on the last page. */
  nextCursor?: string;
}

interface Pending {
  event: AuditEventInput;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Buffered, batching writer. write() resolves once the event is committed by the store (or
 * rejects on a permanent 4xx); when the buffer is full, write() waits for room rather than
 * dropping anything. 5xx, 429 and network errors are retried forever with exponential backoff
 * and full jitter, until close() is told to give up. Every batch carries an `Idempotency-Key`
 * kept across its retries, so a batch whose 201 was lost is not stored twice.
 */
export class AuditClient {
  private readonly buf: Pending[] = [];
  private readonly waiters: Array<() => void> = [];
  private readonly opts: Required<Omit<AuditClientOptions, 'fetch' | 'token'>> & {
    fetch: typeof fetch;
    token?: AuditClientOptions['token'];
  };
  private timer?: NodeJS.Timeout;
  private inflight?: Promise<void>;
  private closed = false;
  private aborted = false;

  constructor(opts: AuditClientOptions) {
    this.opts = {
      bufferSize: 10_000,
      batchSize: 500,
      flushIntervalMs: 1000,
      retryBaseMs: 100,
      retryMaxMs: 10_000,
      requestTimeoutMs: 30_000,
      fetch: globalThis.fetch,
      ...opts,
    };
    if (this.opts.batchSize < 1 || this.opts.batchSize > 1000)
      throw new AuditClientError('ERR_CONFIG', 'batchSize must be 1..1000');
  }

  /** Queues one event; resolves when it is committed. */
  async write(event: AuditEventInput): Promise<void> {
    if (this.closed) throw new AuditClientError('ERR_CLIENT_CLOSED', 'client is closed');
    while (this.buf.length >= this.opts.bufferSize) {
      await new Promise<void>((r) => this.waiters.push(r));
      if (this.closed) throw new AuditClientError('ERR_CLIENT_CLOSED', 'client is closed');
    }
    const done = new Promise<void>((resolve, reject) => this.buf.push({ event, resolve, reject }));
    if (this.buf.length >= this.opts.batchSize) this.kick();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.kick();
      }, this.opts.flushIntervalMs);
      this.timer.unref();
    }
    return done;
  }

  /** Sends everything buffered so far. */
  async flush(): Promise<void> {
    while (this.buf.length > 0 || this.inflight) {
      this.kick();
      await this.inflight;
    }
  }

  /** Flushes and stops; with `{ abort: true }` pending events are rejected instead (never silently). */
  async close(opts: { abort?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (opts.abort) {
      this.aborted = true;
      for (const p of this.buf.splice(0))
        p.reject(
          new AuditClientError('ERR_CLIENT_CLOSED', 'client closed before the event was sent'),
        );
    }
    await this.flush();
    for (const w of this.waiters.splice(0)) w();
  }

  /**
   * One page of stored events matching `q`, newest first. Rejects with ERR_CLIENT_REJECTED when
   * the store refuses the query (4xx: a bad filter, no permission) and ERR_CLIENT_UNAVAILABLE
   * when it cannot answer now (5xx, 429, network); not retried, unlike writes.
   */
  async query(q: AuditQuery = {}): Promise<AuditPage> {
    const url = new URL('/api/v1/audit/events', this.opts.url);
    for (const [k, v] of Object.entries(q)) if (v !== undefined) url.searchParams.set(k, String(v));
    let res: Response;
    try {
      res = await this.opts.fetch(url, {
        headers: {
          accept: 'application/json',
          ...(this.opts.token ? { authorization: `Bearer ${await this.opts.token()}` } : {}),
        },
        signal: AbortSignal.timeout(this.opts.requestTimeoutMs),
      });
    } catch (err) {
      throw new AuditClientError('ERR_CLIENT_UNAVAILABLE', 'audit query failed', { cause: err });
    }
    if (res.status !== 200) {
      await res.arrayBuffer();
      throw new AuditClientError(
        res.status >= 500 || res.status === 429 ? 'ERR_CLIENT_UNAVAILABLE' : 'ERR_CLIENT_REJECTED',
        `store refused the query: status ${res.status}`,
      );
    }
    const body = (await res.json()) as {
      data: StoredEvent[];
      pagination: { next_cursor?: string | null };
    };
    const next = body.pagination.next_cursor;
    return { events: body.data, ...(next ? { nextCursor: next } : {}) };
  }

  private kick(): void {
    if (this.inflight || this.buf.length === 0) return;
    this.inflight = this.drain().finally(() => {
      this.inflight = undefined;
    });
  }

  private async drain(): Promise<void> {
    while (this.buf.length > 0) {
      const batch = this.buf.splice(0, this.opts.batchSize);
      for (const w of this.waiters.splice(0, batch.length)) w();
      try {
        await this.send(batch.map((p) => p.event));
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err as Error);
      }
    }
  }

  private async send(events: AuditEventInput[]): Promise<void> {
    // One key for every attempt of this batch: a retry after a lost 201 is a replay, so each
    // event is stored once.
    const idempotencyKey = randomUUID();
    for (let attempt = 0; ; attempt++) {
      let retryable: boolean;
      let reason: string;
      try {
        const res = await this.opts.fetch(new URL('/api/v1/audit/events/batch', this.opts.url), {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'idempotency-key': `"${idempotencyKey}"`,
            ...(this.opts.token ? { authorization: `Bearer ${await this.opts.token()}` } : {}),
          },
          body: JSON.stringify(events),
          signal: AbortSignal.timeout(this.opts.requestTimeoutMs),
        });
        await res.arrayBuffer();
        if (res.status === 201) return;
        retryable = res.status >= 500 || res.status === 429;
        reason = `status ${res.status}`;
      } catch (err) {
        retryable = true;
        reason = (err as Error).message;
      }
      if (!retryable)
        throw new AuditClientError('ERR_CLIENT_REJECTED', `store rejected the batch: ${reason}`);
      if (this.aborted)
        throw new AuditClientError('ERR_CLIENT_CLOSED', `client closed while retrying: ${reason}`);
      const cap = Math.min(
        this.opts.retryMaxMs,
        this.opts.retryBaseMs * 2 ** Math.min(attempt, 20),
      );
      await new Promise((r) => setTimeout(r, Math.random() * cap));
    }
  }
}
