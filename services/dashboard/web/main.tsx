// The Precinct dashboard's UI: one page, hash routes (no server route per view), every call to
// the same-origin BFF. Built by esbuild at dashboard start (see src/static.ts).
import './app.css';
import { StrictMode, useEffect, useState, type FormEvent } from 'react';
import { createRoot } from 'react-dom/client';
import { ApiError, get, post, type AuthConfig, type Me } from './api.js';
import { AccessPage } from './access.js';
import { AuditPage } from './audit.js';
import { ConnectionsPage } from './connections.js';
import { KubePage, NatsPage, WorkloadsPage } from './platform.js';

const VIEWS = [
  { path: 'access', label: 'Access', Page: AccessPage },
  { path: 'connections', label: 'Connections', Page: ConnectionsPage },
  { path: 'workloads', label: 'Workloads', Page: WorkloadsPage },
  { path: 'audit', label: 'Audit', Page: AuditPage, auditorsOnly: true },
  { path: 'kubernetes', label: 'Kubernetes', Page: KubePage },
  { path: 'nats', label: 'NATS', Page: NatsPage },
] as const;

// The Audit view is the auditors' alone (the API refuses everyone else too).
const viewsFor = (me: Me) => VIEWS.filter((v) => !('auditorsOnly' in v) || me.auditor);

function useRoute(): string {
  const read = () => location.hash.replace(/^#\/?/, '') || 'access';
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function OidcLogin({ config }: { config: AuthConfig }) {
  return (
    <main id="main" className="login">
      <section className="card" aria-labelledby="login-h">
        <h1 id="login-h">Sign in to Precinct</h1>
        <p>People sign in with the organisation's identity provider.</p>
        <p className="muted">
          <code>{config.issuer}</code>
        </p>
        {/* A full-page navigation: the provider's page, then back to /api/auth/oidc/callback. */}
        <a className="button" href={config.login_url}>
          Sign in with your identity provider
        </a>
      </section>
    </main>
  );
}

function Login({ onLogin }: { onLogin: (m: Me) => void }) {
  const [config, setConfig] = useState<AuthConfig | null>();
  useEffect(() => {
    get<AuthConfig>('/api/auth/config')
      .then(setConfig)
      .catch(() => setConfig(null));
  }, []);
  if (config === undefined) return <p className="muted loading">Loading…</p>;
  if (config?.source === 'oidc') return <OidcLogin config={config} />;
  return <PasswordLogin onLogin={onLogin} />;
}

function PasswordLogin({ onLogin }: { onLogin: (m: Me) => void }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setBusy(true);
    setError('');
    try {
      onLogin(
        await post<Me>('/api/auth/login', {
          username: String(f.get('username') ?? ''),
          password: String(f.get('password') ?? ''),
        }),
      );
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? 'That user name and password do not match.'
          : 'Logging in failed; try again.',
      );
    } finally {
      setBusy(false);
    }
  }
  return (
    <main id="main" className="login">
      <form className="card" onSubmit={submit} aria-labelledby="login-h">
        <h1 id="login-h">Sign in to Precinct</h1>
        <label>
          User name
          <input name="username" autoComplete="username" required autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required />
        </label>
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

function App() {
  const [me, setMe] = useState<Me | null>();
  const route = useRoute();
  useEffect(() => {
    get<Me>('/api/auth/me')
      .then(setMe)
      .catch(() => setMe(null));
  }, []);
  useEffect(() => {
    const v = me ? viewsFor(me).find((x) => x.path === route) : undefined;
    document.title = `${v?.label ?? (me ? 'Not found' : 'Sign in')} · Precinct`;
  }, [route, me]);
  if (me === undefined) return <p className="muted loading">Loading…</p>;
  if (me === null) return <Login onLogin={setMe} />;
  const views = viewsFor(me);
  const view = views.find((v) => v.path === route);
  async function logout() {
    const r = await post<{ end_session_url?: string } | undefined>('/api/auth/logout').catch(
      () => undefined,
    );
    // Signed in through an OpenID Provider: end the session there too (it comes back to /).
    if (r?.end_session_url) location.assign(r.end_session_url);
    else setMe(null);
  }
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Precinct</span>
        <nav aria-label="Views">
          <ul>
            {views.map((v) => (
              <li key={v.path}>
                <a href={`#/${v.path}`} aria-current={v.path === route ? 'page' : undefined}>
                  {v.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div className="whoami">
          <span>
            Signed in as <strong data-testid="whoami">{me.user}</strong>
            <br />
            <code>{me.spiffe_id}</code>
          </span>
          <button type="button" className="secondary" onClick={() => void logout()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {view ? (
          <view.Page me={me} />
        ) : (
          <>
            <h1>Not found</h1>
            <p>
              <a href="#/access">Go to Access</a>
            </p>
          </>
        )}
      </main>
    </>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
