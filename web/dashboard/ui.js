/**
 * The small pieces every page shares: `html` (htm bound to Preact's h), a data hook that
 * reloads when the live feed says something changed, an action button that shows its
 * own progress and error, and human-readable ages.
 *
 * Invariant: pages never touch the DOM themselves; Preact renders everything from state.
 */
import htm from 'htm';
import { h } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';

export const html = htm.bind(h);

/** `load()` now and whenever one of `keys` changes (e.g. the feed's digest). */
export function useData(load, keys) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  const reload = useCallback(() => {
    let live = true;
    load().then(
      (data) => live && setState({ data, error: undefined }),
      (error) => live && setState((s) => ({ data: s.data, error })),
    );
    return () => {
      live = false;
    };
  }, keys);
  useEffect(reload, [reload]);
  return { ...state, reload };
}

/** A button running `action`; while it runs it is disabled, a failure shows beside it. */
export function Action({ label, action, kind = '', testid }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const run = async () => {
    setBusy(true);
    setError('');
    try {
      await action();
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<span class="action">
    <button class=${kind} disabled=${busy} onClick=${run} data-testid=${testid}>${label}</button>
    ${error && html`<span class="error" role="alert">${error}</span>`}
  </span>`;
}

export function age(seconds) {
  if (seconds < 0) return '0 s';
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

export function Status({ value }) {
  const v = String(value ?? '').toUpperCase();
  const tone = /ERROR|DEAD|DOWN|INACTIVE/.test(v)
    ? 'bad'
    : /ACTIVE|AVAILABLE|IN-USE|UP|ALIVE|RUNNING/.test(v)
      ? 'good'
      : 'warn';
  return html`<span class=${`status ${tone}`}>${value ?? '—'}</span>`;
}

export function ErrorLine({ error }) {
  return error ? html`<p class="error" role="alert">${error.message}</p>` : null;
}

/** A tick every `ms`, for things that age on screen (heartbeats). */
export function useTick(ms) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
