import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { enc, request } from '../api.js';
import { clock, count } from '../format.js';
import type { DeadLetter } from '../types.js';
import { Dialog, type ViewProps } from './common.js';

type Bulk = 'resubmit' | 'delete';

/** Dead letters of one route: list, resubmit or delete one, or all of them after a confirmation. */
export function DeadLetters({ view, canAct, act, route }: ViewProps & { route: string }) {
  const r = view.routes.find((x) => x.name === route);
  const [letters, setLetters] = useState<DeadLetter[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [bulk, setBulk] = useState<Bulk | undefined>();
  const path = `/v1/routes/${enc(route)}/dead-letters`;
  const load = () =>
    request<{ deadLetters: DeadLetter[] }>('GET', path)
      .then((a) => {
        setLetters(a.deadLetters);
        setError(undefined);
      })
      .catch((err: Error) => setError(err.message));
  // Reloaded whenever the route's count of dead letters changes in the live view.
  useEffect(() => {
    void load();
  }, [path, r?.deadLetters, r?.deadLettered]);
  if (!r)
    return html`<section><h2>Dead letters</h2><p>No route ${route} within this token's reach.</p></section>`;
  const run = async (op: Bulk, ids: string[] | undefined) => {
    const body = ids ? { ids } : { all: true };
    if (op === 'resubmit')
      await act<{ resubmitted: number }>(
        'POST',
        `${path}/resubmit`,
        body,
        (a) => `Resubmitted ${a.resubmitted} dead letter${a.resubmitted === 1 ? '' : 's'} of route ${route}.`,
      );
    else
      await act<{ deleted: number }>(
        'DELETE',
        path,
        body,
        (a) => `Deleted ${a.deleted} dead letter${a.deleted === 1 ? '' : 's'} of route ${route}.`,
      );
    await load();
  };
  const exportAll = () => {
    const a = document.createElement('a');
    a.href = `${path}/export`;
    a.download = `${route}-dead-letters.ndjson`;
    a.click();
  };
  const n = letters?.length ?? 0;
  return html`<section aria-labelledby="dl-h">
    <h2 id="dl-h">Dead letters of route ${route}</h2>
    <p><a href="#/routes">← Routes</a></p>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    <div class="toolbar">
      <span>${count(n)} dead letter${n === 1 ? '' : 's'}</span>
      <button type="button" onClick=${exportAll} disabled=${n === 0}>Export</button>
      ${
        canAct
          ? html`<button type="button" disabled=${n === 0} onClick=${() => setBulk('resubmit')}>Resubmit all…</button>
        <button type="button" class="danger" disabled=${n === 0} onClick=${() => setBulk('delete')}>Delete all…</button>`
          : null
      }
    </div>
    ${
      letters === undefined
        ? html`<p>Loading…</p>`
        : html`<div class="scroll"><table class="dead-letters">
      <thead><tr><th>Id</th><th>Stream</th><th class="num">Seq</th><th>Key</th><th>Reason</th><th class="num">Attempts</th><th>Last error</th><th>At</th>${canAct ? html`<th>Actions</th>` : null}</tr></thead>
      <tbody>${letters.map(
        (d) => html`<tr key=${d.id} data-id=${d.id}>
          <td><code>${d.id}</code></td><td>${d.stream}</td><td class="num">${d.seq}</td><td>${d.key ?? ''}</td>
          <td>${d.reason}</td><td class="num">${d.attempts}</td><td class="error-text">${d.lastError}</td><td>${clock(d.at)}</td>
          ${
            canAct
              ? html`<td><div class="actions">
            <button type="button" onClick=${() => run('resubmit', [d.id])}>Resubmit</button>
            <button type="button" class="danger" onClick=${() => run('delete', [d.id])}>Delete</button></div></td>`
              : null
          }
        </tr>`,
      )}</tbody></table></div>`
    }
    ${
      bulk
        ? html`<${Dialog} title=${bulk === 'resubmit' ? 'Resubmit all dead letters' : 'Delete all dead letters'} onClose=${() => setBulk(undefined)}>
        <p>${bulk === 'resubmit' ? 'Resubmit' : 'Delete'} all <strong>${count(n)}</strong> dead letters of route <strong>${route}</strong>?
          ${bulk === 'resubmit' ? ' They go back to the route and are sent again.' : ' They are gone for good.'}</p>
        <div class="buttons">
          <button type="button" class=${bulk === 'delete' ? 'danger' : ''} onClick=${async () => {
            const op = bulk;
            setBulk(undefined);
            await run(op, undefined);
          }}>${bulk === 'resubmit' ? `Resubmit ${n}` : `Delete ${n}`}</button>
          <button type="button" onClick=${() => setBulk(undefined)}>Cancel</button>
        </div>
      <//>`
        : null
    }
  </section>`;
}
