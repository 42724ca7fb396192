// Connections: the person's third-party tokens (e.g. a GitHub token) that agents acting for them
// may use through the egress broker. A token goes in once and never comes back: the BFF stores
// it in the secrets manager and answers only whether one is stored and since when.
import { useEffect, useState, type FormEvent } from 'react';
import { ApiError, get, send, type Connection } from './api.js';

function ConnectionCard({ c, onChange }: { c: Connection; onChange: (c: Connection) => void }) {
  const [busy, setBusy] = useState(false);
  const [status, setStatus] = useState('');
  const [error, setError] = useState('');
  const id = `token-${c.provider}`;

  async function save(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const token = String(new FormData(form).get('token') ?? '');
    setBusy(true);
    setError('');
    setStatus('');
    try {
      onChange(
        await send<Connection>('PUT', `/api/secrets/${encodeURIComponent(c.provider)}`, { token }),
      );
      form.reset();
      setStatus(`Your ${c.provider} token is stored.`);
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 400
          ? 'That token was not accepted.'
          : 'Storing the token failed; try again.',
      );
    } finally {
      setBusy(false);
    }
  }

  async function remove() {
    setBusy(true);
    setError('');
    setStatus('');
    try {
      onChange(await send<Connection>('DELETE', `/api/secrets/${encodeURIComponent(c.provider)}`));
      setStatus(`Your ${c.provider} token is removed.`);
    } catch {
      setError('Removing the token failed; try again.');
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby={`${id}-h`} data-testid={`connection-${c.provider}`}>
      <h2 id={`${id}-h`}>{c.provider}</h2>
      <p data-testid="connection-state">
        {c.stored
          ? `A token is stored${c.updated_at ? ` (updated ${new Date(c.updated_at).toLocaleString()})` : ''}.`
          : 'No token stored.'}
      </p>
      <form className="connection-form" onSubmit={save}>
        <label htmlFor={id}>{`${c.provider} token`}</label>
        <input id={id} name="token" type="password" autoComplete="off" required maxLength={8192} />
        <button type="submit" disabled={busy}>
          {c.stored ? 'Replace token' : 'Store token'}
        </button>
        {c.stored && (
          <button type="button" className="secondary" disabled={busy} onClick={() => void remove()}>
            Remove token
          </button>
        )}
      </form>
      <p role="status">{status}</p>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

export function ConnectionsPage() {
  const [list, setList] = useState<Connection[] | null>();
  const [connected, setConnected] = useState(true);
  useEffect(() => {
    get<{ connected: boolean; providers: Connection[] }>('/api/secrets')
      .then((r) => {
        setConnected(r.connected);
        setList(r.providers);
      })
      .catch(() => setList(null));
  }, []);
  return (
    <>
      <h1>Connections</h1>
      <p className="muted">
        Tokens for third-party APIs that agents acting for you may use. An agent never sees the
        token: Precinct's egress broker adds it to the agent's call, and only when you allowed the
        agent to act for you. Neither this page nor any other will show a stored token again.
      </p>
      {list === undefined && <p className="muted">Loading…</p>}
      {list === null && <p className="error">Could not load your connections.</p>}
      {list && !connected && <p>No secrets manager is connected.</p>}
      {list?.map((c) => (
        <ConnectionCard
          key={c.provider}
          c={c}
          onChange={(n) => setList((l) => l?.map((x) => (x.provider === n.provider ? n : x)))}
        />
      ))}
    </>
  );
}
