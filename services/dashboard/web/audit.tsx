import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { get, post, short, type AuditEvent, type ChainVerification } from './api.js';

interface Filter {
  actor: string;
  outcome: '' | 'success' | 'failure';
  correlation_id: string;
}

const query = (f: Filter) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  return q.toString();
};

export function AuditPage() {
  const [draft, setDraft] = useState<Filter>({ actor: '', outcome: '', correlation_id: '' });
  const [filter, setFilter] = useState<Filter>(draft);
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [connected, setConnected] = useState(true);
  const [error, setError] = useState('');
  const [verdict, setVerdict] = useState<ChainVerification>();
  const [verifyError, setVerifyError] = useState('');

  const load = useCallback(async () => {
    try {
      const r = await get<{ connected: boolean; events: AuditEvent[] }>(
        `/api/platform/audit/events?${query(filter)}`,
      );
      setConnected(r.connected);
      setEvents(r.events);
      setError('');
    } catch (err) {
      setError(`Could not load audit events: ${(err as Error).message}`);
    }
  }, [filter]);

  // Live: every decision this person causes arrives on /events; the store is re-read then, and
  // every few seconds for everyone else's.
  useEffect(() => {
    void load();
    const es = new EventSource('/events');
    let timer: ReturnType<typeof setTimeout> | undefined;
    es.addEventListener('decision', () => {
      clearTimeout(timer);
      timer = setTimeout(() => void load(), 300);
    });
    const every = setInterval(() => void load(), 3000);
    return () => {
      es.close();
      clearInterval(every);
      clearTimeout(timer);
    };
  }, [load]);

  async function verify(id: string) {
    setVerifyError('');
    setVerdict(undefined);
    try {
      setVerdict(
        await post<ChainVerification>('/api/platform/audit/verify', { correlation_id: id }),
      );
    } catch (err) {
      setVerifyError(`Verification failed to run: ${(err as Error).message}`);
    }
  }

  const apply = (e: FormEvent) => {
    e.preventDefault();
    setFilter(draft);
  };

  return (
    <>
      <h1>Audit</h1>
      <p className="lede">
        Every access decision, as the audit store keeps it: hash-chained per transaction.
      </p>
      <form className="card form-row" onSubmit={apply} aria-label="Filter audit events">
        <label>
          Actor
          <input
            name="actor"
            value={draft.actor}
            placeholder="spiffe://…/agent/gpt4"
            onChange={(e) => setDraft({ ...draft, actor: e.target.value })}
          />
        </label>
        <label>
          Decision
          <select
            name="outcome"
            value={draft.outcome}
            onChange={(e) => setDraft({ ...draft, outcome: e.target.value as Filter['outcome'] })}
          >
            <option value="">Any</option>
            <option value="success">Allowed</option>
            <option value="failure">Denied</option>
          </select>
        </label>
        <label>
          Transaction
          <input
            name="correlation_id"
            value={draft.correlation_id}
            onChange={(e) => setDraft({ ...draft, correlation_id: e.target.value })}
          />
        </label>
        <button type="submit">Filter</button>
        <a
          className="button secondary"
          href={`/api/platform/audit/export?${query(filter)}`}
          download
        >
          Export (signed NDJSON)
        </a>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div role="status" aria-live="polite" data-testid="verify-result">
        {verdict &&
          (verdict.is_valid ? (
            <p className="banner ok">
              Chain intact: {verdict.events_checked} event(s) of {verdict.correlation_id} verified.
            </p>
          ) : (
            <div className="banner bad">
              <p>
                <strong>Chain broken</strong> for {verdict.correlation_id}:{' '}
                {verdict.tampered_events.length} tampered event(s), {verdict.broken_links.length}{' '}
                broken link(s) in {verdict.events_checked} checked.
              </p>
              <ul>
                {verdict.tampered_events.map((id) => (
                  <li key={id}>
                    Tampered: <code>{id}</code>
                  </li>
                ))}
                {verdict.broken_links.map((l, i) => (
                  <li key={i}>
                    Link {l.chain_seq ?? '?'}: {l.reason}
                  </li>
                ))}
              </ul>
            </div>
          ))}
        {verifyError && <p className="error">{verifyError}</p>}
      </div>
      {!connected ? (
        <p className="muted">The audit store is not connected on this dashboard.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <caption>{events.length} event(s), newest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">For whom</th>
                <th scope="col">Through agent</th>
                <th scope="col">Document</th>
                <th scope="col">Decision</th>
                <th scope="col">Chain</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <tr key={e.event_id} data-testid="audit-row">
                  <td>
                    <time dateTime={e.event_timestamp}>
                      {new Date(e.event_timestamp).toLocaleTimeString()}
                    </time>
                  </td>
                  <td>{short(e.actor_id)}</td>
                  <td>{short(e.on_behalf_of) || '—'}</td>
                  <td>{short(e.agent) || '—'}</td>
                  <td>{e.resource_id ?? '—'}</td>
                  <td>
                    <span className={`pill ${e.event_outcome === 'success' ? 'ok' : 'bad'}`}>
                      {e.event_outcome === 'success' ? 'allowed' : 'denied'}
                    </span>{' '}
                    <span className="muted">{e.reason}</span>
                  </td>
                  <td>
                    <button
                      type="button"
                      className="small"
                      onClick={() => void verify(e.correlation_id)}
                      aria-label={`Verify chain of transaction ${e.correlation_id}`}
                    >
                      Verify chain
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
