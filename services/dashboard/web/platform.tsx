import { useEffect, useState } from 'react';
import { get, type NatsClient, type ServiceAccount, type TrustView, type Workload } from './api.js';

function useNow(ms: number) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

function countdown(notAfter: string, now: number): string {
  const s = Math.floor((Date.parse(notAfter) - now) / 1000);
  if (s <= 0) return 'expired';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}h ` : ''}${m}m ${String(s % 60).padStart(2, '0')}s`;
}

const NotConnected = ({ what }: { what: string }) => (
  <p className="muted">{what} is not connected on this dashboard.</p>
);

export function WorkloadsPage() {
  const [data, setData] = useState<{
    connected: boolean;
    workloads: Workload[];
    trust?: TrustView;
  }>();
  const [rotations, setRotations] = useState<Record<string, number>>({});
  const [error, setError] = useState('');
  const now = useNow(1000);
  useEffect(() => {
    const load = () =>
      get<NonNullable<typeof data>>('/api/platform/workloads')
        .then((d) => {
          setData(d);
          setError('');
        })
        .catch((err: Error) => setError(`Could not load workloads: ${err.message}`));
    void load();
    const es = new EventSource('/api/platform/workloads/rotations');
    es.addEventListener('rotation', (m) => {
      const w = JSON.parse((m as MessageEvent<string>).data) as Workload;
      setRotations((r) => ({ ...r, [w.spiffeId]: (r[w.spiffeId] ?? 0) + 1 }));
      setData(
        (d) =>
          d && {
            ...d,
            workloads: d.workloads.some((x) => x.spiffeId === w.spiffeId)
              ? d.workloads.map((x) => (x.spiffeId === w.spiffeId ? { ...x, ...w } : x))
              : [...d.workloads, w],
          },
      );
    });
    return () => es.close();
  }, []);
  return (
    <>
      <h1>Workloads</h1>
      <p className="lede">Each workload's current X.509-SVID; rotations arrive live.</p>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {data && !data.connected && <NotConnected what="The identity server" />}
      {data?.connected && (
        <div className="table-wrap">
          <table>
            <caption>{data.workloads.length} workload(s)</caption>
            <thead>
              <tr>
                <th scope="col">SPIFFE ID</th>
                <th scope="col">SVID serial</th>
                <th scope="col">Expires in</th>
                <th scope="col">Rotations seen</th>
              </tr>
            </thead>
            <tbody>
              {data.workloads.map((w) => (
                <tr key={w.spiffeId} data-testid="workload-row">
                  <td>
                    <code>{w.spiffeId}</code>
                  </td>
                  <td>
                    <code className="serial">{w.serial}</code>
                  </td>
                  <td>
                    <time dateTime={w.notAfter}>{countdown(w.notAfter, now)}</time>
                  </td>
                  <td>{rotations[w.spiffeId] ?? 0}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {data?.trust && (
        <div className="grid2">
          <section className="card" aria-labelledby="bundle-h">
            <h2 id="bundle-h">Trust bundle: {data.trust.trustDomain}</h2>
            <Authorities list={data.trust.authorities} />
          </section>
          <section className="card" aria-labelledby="fed-h">
            <h2 id="fed-h">Federation</h2>
            {data.trust.federation.length === 0 ? (
              <p className="muted">No federated trust domains.</p>
            ) : (
              data.trust.federation.map((f) => (
                <div key={f.trustDomain}>
                  <h3>{f.trustDomain}</h3>
                  {f.endpoint && (
                    <p className="muted">
                      Bundle endpoint <code>{f.endpoint}</code>
                    </p>
                  )}
                  <Authorities list={f.authorities} />
                </div>
              ))
            )}
          </section>
        </div>
      )}
    </>
  );
}

function Authorities({ list }: { list: TrustView['authorities'] }) {
  return (
    <ul className="plain">
      {list.map((a) => (
        <li key={a.fingerprint}>
          {a.subject}{' '}
          <span className="muted">until {new Date(a.notAfter).toLocaleDateString()}</span>
          <br />
          <code className="serial">sha256:{a.fingerprint}</code>
        </li>
      ))}
    </ul>
  );
}

const Subjects = ({ allow, deny }: { allow: string[]; deny: string[] }) => (
  <>
    {allow.map((s) => (
      <code key={`a${s}`} className="subject allow">
        {s}
      </code>
    ))}
    {deny.map((s) => (
      <code key={`d${s}`} className="subject deny">
        not {s}
      </code>
    ))}
    {allow.length + deny.length === 0 && <span className="muted">none</span>}
  </>
);

export function KubePage() {
  const [data, setData] = useState<{ connected: boolean; serviceAccounts: ServiceAccount[] }>();
  const [error, setError] = useState('');
  useEffect(() => {
    get<NonNullable<typeof data>>('/api/platform/kube/serviceaccounts')
      .then(setData)
      .catch((err: Error) => setError(`Could not load ServiceAccounts: ${err.message}`));
  }, []);
  return (
    <>
      <h1>Kubernetes</h1>
      <p className="lede">
        ServiceAccounts, their annotations and the NATS permissions they imply.
      </p>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {data && !data.connected && <NotConnected what="Kubernetes" />}
      {data?.connected && (
        <div className="table-wrap">
          <table>
            <caption>{data.serviceAccounts.length} ServiceAccount(s)</caption>
            <thead>
              <tr>
                <th scope="col">ServiceAccount</th>
                <th scope="col">Annotations</th>
                <th scope="col">NATS publish</th>
                <th scope="col">NATS subscribe</th>
              </tr>
            </thead>
            <tbody>
              {data.serviceAccounts.map((sa) => (
                <tr key={`${sa.namespace}/${sa.name}`} data-testid="sa-row">
                  <td>
                    <strong>{sa.name}</strong>
                    <br />
                    <span className="muted">{sa.namespace}</span>
                    {sa.spiffeId && (
                      <>
                        <br />
                        <code>{sa.spiffeId}</code>
                      </>
                    )}
                  </td>
                  <td>
                    {Object.keys(sa.annotations).length === 0 ? (
                      <span className="muted">none</span>
                    ) : (
                      <dl className="annotations">
                        {Object.entries(sa.annotations).map(([k, v]) => (
                          <div key={k}>
                            <dt>{k}</dt>
                            <dd>{v}</dd>
                          </div>
                        ))}
                      </dl>
                    )}
                  </td>
                  <td>
                    {sa.nats ? <Subjects {...sa.nats.pub} /> : <span className="muted">—</span>}
                  </td>
                  <td>
                    {sa.nats ? <Subjects {...sa.nats.sub} /> : <span className="muted">—</span>}
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

export function NatsPage() {
  const [data, setData] = useState<{ connected: boolean; clients: NatsClient[] }>();
  const [error, setError] = useState('');
  useEffect(() => {
    const load = () =>
      get<NonNullable<typeof data>>('/api/platform/nats/clients')
        .then(setData)
        .catch((err: Error) => setError(`Could not load NATS clients: ${err.message}`));
    void load();
    const t = setInterval(() => void load(), 5000);
    return () => clearInterval(t);
  }, []);
  return (
    <>
      <h1>NATS</h1>
      <p className="lede">Connected clients and the subjects the auth callout granted them.</p>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {data && !data.connected && <NotConnected what="NATS" />}
      {data?.connected && (
        <div className="table-wrap">
          <table>
            <caption>{data.clients.length} connected client(s)</caption>
            <thead>
              <tr>
                <th scope="col">Client</th>
                <th scope="col">Publish</th>
                <th scope="col">Subscribe</th>
              </tr>
            </thead>
            <tbody>
              {data.clients.map((c) => (
                <tr key={c.name} data-testid="nats-row">
                  <td>
                    <strong>{c.name}</strong>
                    {c.spiffeId && (
                      <>
                        <br />
                        <code>{c.spiffeId}</code>
                      </>
                    )}
                    {c.account && <span className="muted"> account {c.account}</span>}
                  </td>
                  <td>
                    <Subjects allow={c.pub} deny={[]} />
                  </td>
                  <td>
                    <Subjects allow={c.sub} deny={[]} />
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
