import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, downloadPost, enc, fetchBytes, request, saveAs } from '../api.js';
import { bytes, clock, count } from '../format.js';
import { asHex, asJson, asText, bestMode, type PayloadMode } from '../payload.js';
import type { DeadLetter } from '../types.js';
import { Dialog, type ViewProps } from './common.js';

type Op = 'resubmit' | 'delete';
/** What a bulk action touches: the checked letters, or all of the reason shown (or all). */
type Scope = 'selected' | 'matching';

const REASONS = ['error', 'retries-exhausted', 'damaged'] as const;
/** Rows drawn at most: the page stays responsive with a large backlog (filter or export for the rest). */
const MAX_ROWS = 500;
/** Bytes of a payload fetched to show it; Download fetches all of it. */
const PREVIEW_BYTES = 64 * 1024;

const plural = (n: number, word: string) => `${count(n)} ${word}${n === 1 ? '' : 's'}`;

/** The count and bytes of some letters, as a confirmation states them. */
function extent(letters: readonly DeadLetter[]): string {
  let sum = 0;
  let unknown = 0;
  for (const l of letters) {
    if (l.bytes === undefined) unknown++;
    else sum += l.bytes;
  }
  const size = unknown === letters.length && unknown > 0 ? 'size unknown' : bytes(sum);
  const extra =
    unknown > 0 && unknown < letters.length ? `, and ${plural(unknown, 'letter')} of unknown size` : '';
  return `${plural(letters.length, 'dead letter')} (${size}${extra})`;
}

/** Dead letters of one route: filter by reason, view a payload, act on one, a selection or all matching. */
export function DeadLetters({ view, canAct, act, route }: ViewProps & { route: string }) {
  const r = view.routes.find((x) => x.name === route);
  const [letters, setLetters] = useState<DeadLetter[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [reason, setReason] = useState<string>('');
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [confirm, setConfirm] = useState<{ op: Op; scope: Scope } | undefined>();
  const [viewing, setViewing] = useState<DeadLetter | undefined>();
  const path = `/v1/routes/${enc(route)}/dead-letters`;
  const load = () =>
    request<{ deadLetters: DeadLetter[] }>('GET', path)
      .then((a) => {
        setLetters(a.deadLetters);
        // Letters resubmitted or deleted elsewhere leave the selection.
        setSelected((s) => new Set(a.deadLetters.filter((l) => s.has(l.id)).map((l) => l.id)));
        setError(undefined);
      })
      .catch((err: Error) => setError(err.message));
  // Reloaded whenever the route's count of dead letters changes in the live view.
  useEffect(() => {
    void load();
  }, [path, r?.deadLetters, r?.deadLettered]);
  if (!r)
    return html`<section><h2>Dead letters</h2><p>No route ${route} within this token's reach.</p></section>`;

  const matching = (letters ?? []).filter((l) => reason === '' || l.reason === reason);
  const chosen = matching.filter((l) => selected.has(l.id));
  const shown = matching.slice(0, MAX_ROWS);
  const touched = (scope: Scope) => (scope === 'selected' ? chosen : matching);
  // The whole of what is shown goes as the filter, not as ids: a body of 100 000 ids is too large.
  const bodyOf = (scope: Scope): object => {
    if (scope === 'selected' && chosen.length < matching.length) return { ids: chosen.map((l) => l.id) };
    return reason === '' ? { all: true } : { reason };
  };
  const run = async (op: Op, body: object) => {
    if (op === 'resubmit')
      await act<{ resubmitted: number }>(
        'POST',
        `${path}/resubmit`,
        body,
        (a) => `Resubmitted ${plural(a.resubmitted, 'dead letter')} of route ${route}.`,
      );
    else
      await act<{ deleted: number }>(
        'DELETE',
        path,
        body,
        (a) => `Deleted ${plural(a.deleted, 'dead letter')} of route ${route}.`,
      );
    await load();
  };
  const exportMatching = () =>
    saveAs(`${path}/export${reason ? `?reason=${enc(reason)}` : ''}`, `${route}-dead-letters.ndjson`);
  const exportSelected = () =>
    downloadPost(`${path}/export`, bodyOf('selected'), `${route}-dead-letters-selected.ndjson`).catch(
      (err: Error) => setError(err.message),
    );
  const toggle = (id: string) =>
    setSelected((s) => {
      const next = new Set(s);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const allShownChecked = shown.length > 0 && shown.every((l) => selected.has(l.id));
  const toggleShown = () => setSelected(allShownChecked ? new Set() : new Set(shown.map((l) => l.id)));
  const reasonLabel = reason === '' ? '' : ` "${reason}"`;
  const n = matching.length;
  const c = chosen.length;

  return html`<section aria-labelledby="dl-h">
    <h2 id="dl-h">Dead letters of route ${route}</h2>
    <p><a href="#/routes">← Routes</a></p>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    <div class="toolbar">
      <label>Reason <select value=${reason} onChange=${(e: Event) => {
        setReason((e.target as HTMLSelectElement).value);
        setSelected(new Set());
      }}>
        <option value="">all (${count(letters?.length ?? 0)})</option>
        ${REASONS.map((x) => html`<option key=${x} value=${x}>${x} (${count((letters ?? []).filter((l) => l.reason === x).length)})</option>`)}
      </select></label>
      <span>${plural(n, 'dead letter')}${c > 0 ? `, ${count(c)} selected` : ''}</span>
      <button type="button" onClick=${exportMatching} disabled=${n === 0}>Export</button>
      <button type="button" onClick=${exportSelected} disabled=${c === 0}>Export selected</button>
      ${
        canAct
          ? html`<button type="button" disabled=${c === 0} onClick=${() => setConfirm({ op: 'resubmit', scope: 'selected' })}>Resubmit selected…</button>
        <button type="button" class="danger" disabled=${c === 0} onClick=${() => setConfirm({ op: 'delete', scope: 'selected' })}>Delete selected…</button>
        <button type="button" disabled=${n === 0} onClick=${() => setConfirm({ op: 'resubmit', scope: 'matching' })}>Resubmit all${reasonLabel}…</button>
        <button type="button" class="danger" disabled=${n === 0} onClick=${() => setConfirm({ op: 'delete', scope: 'matching' })}>Delete all${reasonLabel}…</button>`
          : null
      }
    </div>
    ${n > MAX_ROWS ? html`<p class="hint">Showing the oldest ${count(MAX_ROWS)} of ${count(n)}; filter by reason, or export them all.</p>` : null}
    ${
      letters === undefined
        ? html`<p>Loading…</p>`
        : html`<div class="scroll"><table class="dead-letters">
      <thead><tr>
        <th><input type="checkbox" aria-label="Select all shown" checked=${allShownChecked} disabled=${shown.length === 0} onChange=${toggleShown} /></th>
        <th>Id</th><th>Stream / seq</th><th>Key</th><th>Reason</th><th class="num">Attempts</th><th>First failure</th><th>Last failure</th><th class="num">Size</th><th>Last error</th><th>Actions</th>
      </tr></thead>
      <tbody>${shown.map(
        (d) => html`<tr key=${d.id} data-id=${d.id}>
          <td><input type="checkbox" aria-label=${`Select ${d.id}`} checked=${selected.has(d.id)} onChange=${() => toggle(d.id)} /></td>
          <td><code>${d.id}</code></td><td>${d.stream} / ${d.seq}</td><td>${d.key ?? ''}</td>
          <td>${d.reason}</td><td class="num">${d.attempts}</td><td>${clock(d.firstFailedAt ?? d.at)}</td><td>${clock(d.at)}</td>
          <td class="num">${bytes(d.bytes)}</td><td class="error-text">${d.lastError}</td>
          <td><div class="actions">
            <button type="button" onClick=${() => setViewing(d)}>Payload</button>
            ${
              canAct
                ? html`<button type="button" onClick=${() => run('resubmit', { ids: [d.id] })}>Resubmit</button>
            <button type="button" class="danger" onClick=${() => run('delete', { ids: [d.id] })}>Delete</button>`
                : null
            }</div></td>
        </tr>`,
      )}</tbody></table></div>`
    }
    ${
      confirm
        ? html`<${Confirm} op=${confirm.op} route=${route} letters=${touched(confirm.scope)}
            what=${confirm.scope === 'selected' ? 'the selected' : reason === '' ? 'all' : `all of reason "${reason}":`}
            onClose=${() => setConfirm(undefined)}
            onConfirm=${async () => {
              const { op, scope } = confirm;
              const body = bodyOf(scope);
              setConfirm(undefined);
              if (scope === 'selected') setSelected(new Set());
              await run(op, body);
            }} />`
        : null
    }
    ${viewing ? html`<${PayloadDialog} letter=${viewing} path=${`${path}/${enc(viewing.id)}/payload`} route=${route} onClose=${() => setViewing(undefined)} />` : null}
  </section>`;
}

function Confirm(props: {
  op: Op;
  route: string;
  letters: readonly DeadLetter[];
  what: string;
  onClose: () => void;
  onConfirm: () => void;
}) {
  const { op, route, letters } = props;
  const verb = op === 'resubmit' ? 'Resubmit' : 'Delete';
  return html`<${Dialog} title=${`${verb} dead letters`} onClose=${props.onClose}>
    <p>${verb} ${props.what} <strong>${extent(letters)}</strong> of route <strong>${route}</strong>?
      ${op === 'resubmit' ? ' They go back to the route and are sent again.' : ' They are gone for good.'}</p>
    <div class="buttons">
      <button type="button" class=${op === 'delete' ? 'danger' : ''} onClick=${props.onConfirm}>${verb} ${letters.length}</button>
      <button type="button" onClick=${props.onClose}>Cancel</button>
    </div>
  <//>`;
}

function PayloadDialog({
  letter,
  path,
  route,
  onClose,
}: {
  letter: DeadLetter;
  path: string;
  route: string;
  onClose: () => void;
}) {
  const [payload, setPayload] = useState<
    { bytes: Uint8Array; total: number; type: string | null } | undefined
  >();
  const [mode, setMode] = useState<PayloadMode>('text');
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    fetchBytes(`${path}?maxBytes=${PREVIEW_BYTES}`).then(
      ({ bytes: b, headers }) => {
        const type = decodedHeader(headers, 'waystation-content-type');
        setPayload({ bytes: b, total: Number(headers.get('waystation-payload-bytes') ?? b.length), type });
        setMode(bestMode(b, type));
      },
      (err: Error) => setError(err instanceof ApiError ? err.message : String(err)),
    );
  }, [path]);
  const json = payload && mode === 'json' ? asJson(payload.bytes) : undefined;
  const shown = !payload
    ? ''
    : mode === 'hex'
      ? asHex(payload.bytes)
      : mode === 'json'
        ? json!.ok
          ? json!.text
          : `Not valid JSON: ${json!.why}`
        : asText(payload.bytes);
  const partial = payload !== undefined && payload.total > payload.bytes.length;
  return html`<${Dialog} title=${`Payload of ${letter.id}`} onClose=${onClose} wide>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    ${
      payload
        ? html`<p>${bytes(payload.total)}${payload.type ? `, ${payload.type}` : ''}${partial ? ` — showing the first ${bytes(payload.bytes.length)}` : ''}</p>
      <div class="buttons" role="group" aria-label="Show as">
        ${(['text', 'json', 'hex'] as const).map(
          (m) =>
            html`<button type="button" key=${m} aria-pressed=${mode === m} onClick=${() => setMode(m)}>${m === 'json' ? 'JSON' : m === 'hex' ? 'Hex' : 'Text'}</button>`,
        )}
      </div>
      <pre class="payload" data-mode=${mode}>${shown}</pre>`
        : error
          ? null
          : html`<p>Loading…</p>`
    }
    <div class="buttons">
      <a class="button" href=${path} download=${`${route}-${letter.id}.bin`}>Download</a>
      <button type="button" onClick=${onClose}>Close</button>
    </div>
  <//>`;
}

/** A header, decoded when the gateway percent-encoded it (src/store/http-headers.ts). */
function decodedHeader(headers: Headers, name: string): string | null {
  const value = headers.get(name);
  const encoded = (headers.get('waystation-encoded-headers') ?? '').split(',').map((n) => n.trim());
  if (value === null || !encoded.includes(name)) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
