/**
 * The person's grant of which agents may act for them (the `may_act` idea of RFC 8693 4.4,
 * kept by the token service rather than carried in a token). Consulted on every exchange, so
 * withdrawing consent takes effect for the next one.
 */
export interface ConsentStore {
  /** Whether `agent` (a SPIFFE ID) may act for `person` now. Rejects if it cannot tell. */
  mayAct(person: string, agent: string): Promise<boolean>;
}

/** A ConsentStore in memory: for one replica, development and tests. */
export class MemoryConsentStore implements ConsentStore {
  readonly #grants = new Map<string, Set<string>>();

  /** Lets each of `agents` act for `person` (adds to earlier grants). */
  grant(person: string, agents: Iterable<string>): void {
    let set = this.#grants.get(person);
    if (!set) this.#grants.set(person, (set = new Set()));
    for (const agent of agents) set.add(agent);
  }

  /** Withdraws consent for `agent`, or for every agent when `agent` is omitted. */
  withdraw(person: string, agent?: string): void {
    if (agent === undefined) this.#grants.delete(person);
    else this.#grants.get(person)?.delete(agent);
  }

  async mayAct(person: string, agent: string): Promise<boolean> {
    return this.#grants.get(person)?.has(agent) ?? false;
  }
}
