import { useEffect, useState, type FormEvent } from 'react';
import {
  get,
  post,
  short,
  type AgentInfo,
  type Decision,
  type DocumentInfo,
  type Me,
  type Person,
} from './api.js';
import { DecisionSets } from './sets.js';

interface Outcome {
  mode: 'direct' | 'delegated';
  agent?: AgentInfo | undefined;
  document: DocumentInfo;
  decision: Decision;
}

function OutcomeCard({ o, person }: { o: Outcome; person: Person | undefined }) {
  const d = o.decision.details ?? {};
  const personSet = d.user_departments ?? person?.departments ?? [];
  const agentSet =
    o.mode === 'delegated' ? (d.agent_capabilities ?? o.agent?.capabilities ?? []) : undefined;
  const effective =
    d.effective_permissions ??
    (agentSet ? personSet.filter((x) => agentSet.includes(x)) : personSet);
  const title =
    o.mode === 'direct' ? 'Direct: you alone' : `Delegated: ${o.agent?.name ?? ''} for you`;
  return (
    <section
      className={`card outcome ${o.decision.granted ? 'granted' : 'denied'}`}
      aria-label={title}
      data-testid={`outcome-${o.mode}`}
    >
      <h3>{title}</h3>
      <p className="verdict" role="status">
        <strong>{o.decision.granted ? 'Granted' : 'Denied'}</strong>
        <span className="reason"> — {o.decision.reason || 'no reason given'}</span>
      </p>
      <DecisionSets
        idPrefix={`sets-${o.mode}`}
        person={personSet}
        agent={agentSet}
        agentName={o.agent?.name}
        required={d.required ?? o.document.required_departments}
        effective={effective}
        granted={o.decision.granted}
      />
    </section>
  );
}

export function AccessPage({ me }: { me: Me }) {
  const [docs, setDocs] = useState<DocumentInfo[]>([]);
  const [agents, setAgents] = useState<AgentInfo[]>([]);
  const [people, setPeople] = useState<Person[]>([]);
  const [docId, setDocId] = useState('');
  const [agentId, setAgentId] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);

  useEffect(() => {
    void Promise.all([
      get<DocumentInfo[]>('/api/documents'),
      get<AgentInfo[]>('/api/agents'),
      get<Person[]>('/api/users'),
    ])
      .then(([d, a, p]) => {
        setDocs(d);
        setAgents(a);
        setPeople(p);
        setDocId((x) => x || (d[0]?.id ?? ''));
      })
      .catch(() => setError('Could not load documents and agents.'));
  }, []);

  const person = people.find((p) => p.id === me.user);

  async function decide(e: FormEvent) {
    e.preventDefault();
    const document = docs.find((d) => d.id === docId);
    if (!document) return;
    setBusy(true);
    setError('');
    try {
      const agent = agents.find((a) => a.id === agentId);
      const direct = post<Decision>('/api/access-direct', { document_id: docId }).then(
        (decision): Outcome => ({ mode: 'direct', document, decision }),
      );
      const delegated = agent
        ? post<Decision>('/api/access-delegated', { agent_id: agent.id, document_id: docId }).then(
            (decision): Outcome => ({ mode: 'delegated', agent, document, decision }),
          )
        : undefined;
      setOutcomes(await Promise.all(delegated ? [direct, delegated] : [direct]));
    } catch (err) {
      setError(`The decision could not be made: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <h1>Access</h1>
      <p className="lede">
        Pick a document, and an agent to act for you. Delegated access is what you and the agent
        both have; the document needs any one of its departments.
      </p>
      <form className="card form-row" onSubmit={decide} aria-label="Ask for access">
        <label>
          Document
          <select value={docId} onChange={(e) => setDocId(e.target.value)} name="document">
            {docs.map((d) => (
              <option key={d.id} value={d.id}>
                {d.id} — {d.title} ({d.required_departments.join(' or ')})
              </option>
            ))}
          </select>
        </label>
        <label>
          Agent acting for you
          <select value={agentId} onChange={(e) => setAgentId(e.target.value)} name="agent">
            <option value="">None: direct access only</option>
            {agents.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name} ({a.capabilities.join(', ')})
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={busy || !docId}>
          {busy ? 'Deciding…' : 'Decide'}
        </button>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div className="outcomes" aria-live="polite">
        {outcomes.map((o) => (
          <OutcomeCard key={o.mode} o={o} person={person} />
        ))}
      </div>
      <ConsentSection agents={agents} />
    </>
  );
}

function ConsentSection({ agents }: { agents: AgentInfo[] }) {
  const [state, setState] = useState<{
    connected: boolean;
    agents: Array<{ id: string; granted: boolean }>;
  }>();
  const [msg, setMsg] = useState('');
  const load = () =>
    get<typeof state>('/api/platform/consent')
      .then(setState)
      .catch(() => setState({ connected: false, agents: [] }));
  useEffect(() => {
    void load();
  }, []);
  async function toggle(id: string, granted: boolean) {
    // Shown at once (a checkbox that lags its click reads as broken); the reload below corrects it.
    setState(
      (s) => s && { ...s, agents: s.agents.map((a) => (a.id === id ? { ...a, granted } : a)) },
    );
    try {
      await post('/api/platform/consent', { agent: id, granted });
      setMsg(`${short(id)} ${granted ? 'may now act for you' : 'may no longer act for you'}.`);
      await load();
    } catch (err) {
      setMsg(`Could not change consent: ${(err as Error).message}`);
      await load();
    }
  }
  const nameOf = (id: string) => agents.find((a) => a.spiffe_id === id)?.name ?? short(id);
  return (
    <section className="card" aria-labelledby="consent-h">
      <h2 id="consent-h">Agents that may act for me</h2>
      {!state?.connected ? (
        <p className="muted">Consent is not connected on this dashboard.</p>
      ) : (
        <ul className="consent">
          {state.agents.map((a) => (
            <li key={a.id}>
              <label>
                <input
                  type="checkbox"
                  checked={a.granted}
                  onChange={(e) => void toggle(a.id, e.target.checked)}
                />{' '}
                {nameOf(a.id)} <code>{a.id}</code>
              </label>
            </li>
          ))}
        </ul>
      )}
      <p role="status" className="muted">
        {msg}
      </p>
    </section>
  );
}
