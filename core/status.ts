/**
 * The status reporter: what an agent last told the API about each of its resources, so
 * it sends only changes (the kubelet status manager's rule).
 *
 * Invariants:
 * - `flush()` sends every key whose value differs from the one last sent, in one `send`,
 *   and remembers them only once `send` resolved: a failed send is retried by the next
 *   flush, never lost; flushes run one at a time, in order;
 * - `forget()` (on resync) forgets what was sent, so the next flush sends every value
 *   again: the API may have lost or dropped them (restart, revival);
 * - values are compared structurally (JSON), so a fresh but equal object is no change;
 * - a key dropped or forgotten while a send is in flight is not marked sent by it: a
 *   drop (the resource was hinted) or a resync always wins over the send it overlapped.
 */
export interface StatusChange<V> {
  key: string;
  value: V;
}

export interface StatusReporter<V> {
  /** Records the value to report for `key` (sent by the next flush if it changed). */
  set(key: string, value: V): void;
  /** Stops tracking `key` (it is neither sent nor remembered any more). */
  drop(key: string): void;
  /** Sends what changed since the last successful send. */
  flush(): Promise<void>;
  /** Forgets what was sent: the next flush sends every value again. */
  forget(): void;
  /** The keys whose last sent value is known (for agents that report removals). */
  sentKeys(): string[];
  /** The last value sent for `key`. */
  sent(key: string): V | undefined;
}

export function createStatusReporter<V>(opts: {
  send(changes: StatusChange<V>[]): Promise<void>;
}): StatusReporter<V> {
  const current = new Map<string, V>();
  const sent = new Map<string, string>();
  const sentValues = new Map<string, V>();
  /** Bumped by drop and forget: a send started before marks nothing of a later era. */
  const generation = new Map<string, number>();
  let era = 0;
  let chain: Promise<void> = Promise.resolve();
  const genOf = (key: string) => `${era}:${generation.get(key) ?? 0}`;

  const sendChanges = async () => {
    const changes: StatusChange<V>[] = [];
    const texts = new Map<string, { text: string; gen: string }>();
    for (const [key, value] of current) {
      const text = JSON.stringify(value);
      if (sent.get(key) === text) continue;
      changes.push({ key, value });
      texts.set(key, { text, gen: genOf(key) });
    }
    if (changes.length === 0) return;
    await opts.send(changes);
    for (const { key, value } of changes) {
      const t = texts.get(key) as { text: string; gen: string };
      if (t.gen !== genOf(key)) continue;
      sent.set(key, t.text);
      sentValues.set(key, value);
    }
  };

  return {
    set(key, value) {
      current.set(key, value);
    },
    drop(key) {
      current.delete(key);
      sent.delete(key);
      sentValues.delete(key);
      generation.set(key, (generation.get(key) ?? 0) + 1);
    },
    flush() {
      const run = chain.then(sendChanges);
      chain = run.catch(() => {});
      return run;
    },
    forget() {
      sent.clear();
      sentValues.clear();
      generation.clear();
      era++;
    },
    sentKeys: () => [...sentValues.keys()],
    sent: (key) => sentValues.get(key),
  };
}
