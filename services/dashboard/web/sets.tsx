// The decision drawn as sets: the person's departments, the agent's capabilities and the
// document's required departments. The effective set (person ∩ agent, or the person alone for
// direct access) is shaded; access is granted when it meets the document's set.

interface SetsProps {
  idPrefix: string;
  person: string[];
  agent?: string[] | undefined;
  required: string[];
  effective: string[];
  granted: boolean;
  agentName?: string | undefined;
}

const list = (xs: string[]) => (xs.length ? xs.join(', ') : 'none');

export function DecisionSets(p: SetsProps) {
  const delegated = p.agent !== undefined;
  const meet = p.effective.filter((x) => p.required.includes(x));
  const clipId = `${p.idPrefix}-clip`;
  const label =
    `Person: ${list(p.person)}. ` +
    (delegated ? `Agent ${p.agentName ?? ''}: ${list(p.agent!)}. ` : '') +
    `Effective: ${list(p.effective)}. Document requires any of: ${list(p.required)}. ` +
    `Overlap: ${list(meet)}.`;
  // Circle centres: person left, agent right, document below.
  const P = { x: 120, y: 100 };
  const A = { x: 200, y: 100 };
  const D = { x: 160, y: 165 };
  const r = 70;
  return (
    <figure className="sets">
      <svg viewBox="0 0 320 250" role="img" aria-label={label} className="sets-svg">
        <defs>
          <clipPath id={clipId}>
            <circle cx={P.x} cy={P.y} r={r} />
          </clipPath>
        </defs>
        <circle cx={P.x} cy={P.y} r={r} className="set set-person" />
        {delegated && <circle cx={A.x} cy={A.y} r={r} className="set set-agent" />}
        <circle cx={D.x} cy={D.y} r={r} className="set set-doc" />
        {delegated ? (
          <circle cx={A.x} cy={A.y} r={r} clipPath={`url(#${clipId})`} className="set-effective" />
        ) : (
          <circle cx={P.x} cy={P.y} r={r} className="set-effective" />
        )}
        <text x={P.x - 60} y={28} className="set-label">
          Person
        </text>
        {delegated && (
          <text x={A.x + 10} y={28} className="set-label">
            Agent
          </text>
        )}
        <text x={D.x - 30} y={245} className="set-label">
          Document
        </text>
        <text
          x={160}
          y={118}
          textAnchor="middle"
          className={p.granted ? 'set-mark ok' : 'set-mark no'}
        >
          {p.granted ? '✓' : '✗'}
        </text>
      </svg>
      <figcaption>
        <dl className="set-list">
          <dt>
            <span className="swatch swatch-person" aria-hidden="true" /> Person
          </dt>
          <dd>{list(p.person)}</dd>
          {delegated && (
            <>
              <dt>
                <span className="swatch swatch-agent" aria-hidden="true" /> Agent: {p.agentName}
              </dt>
              <dd>{list(p.agent!)}</dd>
            </>
          )}
          <dt>
            <span className="swatch swatch-effective" aria-hidden="true" /> Effective
          </dt>
          <dd>{list(p.effective)}</dd>
          <dt>
            <span className="swatch swatch-doc" aria-hidden="true" /> Document needs any of
          </dt>
          <dd>{list(p.required)}</dd>
        </dl>
      </figcaption>
    </figure>
  );
}
