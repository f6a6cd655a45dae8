import { html } from 'htm/preact';
import { bytes, count } from '../format.js';
import type { ViewProps } from './common.js';

export function Streams({ view }: ViewProps) {
  return html`<section aria-labelledby="streams-h">
    <h2 id="streams-h">Streams</h2>
    <div class="scroll"><table>
      <thead><tr><th>Name</th><th class="num">First seq</th><th class="num">Last seq</th><th class="num">Messages</th><th class="num">Bytes</th><th>Routes</th></tr></thead>
      <tbody>${view.streams.map(
        (
          s,
        ) => html`<tr key=${s.name}><td>${s.name}</td><td class="num">${s.firstSeq}</td><td class="num">${s.lastSeq}</td>
          <td class="num">${count(s.messages)}</td><td class="num">${bytes(s.bytes)}</td><td>${s.routes.join(', ') || '—'}</td></tr>`,
      )}</tbody>
    </table></div>
    ${view.streams.length === 0 ? html`<p>No streams within this token's reach.</p>` : null}
  </section>`;
}
