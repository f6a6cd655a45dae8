/**
 * `GET /docs`: the HTTP API's reference as one HTML page rendered from the OpenAPI document the
 * gateway serves at `/openapi.json` — no script, no stylesheet, nothing loaded from anywhere
 * (edge sites are often offline), under a Content-Security-Policy that allows nothing else.
 */

interface OpenApiOperation {
  summary?: string;
  description?: string;
  parameters?: { name: string; in: string; required?: boolean; schema?: { type?: string } }[];
  requestBody?: unknown;
  responses?: Record<string, { description?: string }>;
}

export interface OpenApiDocument {
  info?: { title?: string; version?: string };
  paths?: Record<string, Record<string, OpenApiOperation>>;
}

export const DOCS_PAGE_CSP =
  "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderDocsPage(doc: OpenApiDocument): string {
  const title = escapeHtml(`${doc.info?.title ?? 'HTTP API'} ${doc.info?.version ?? ''}`.trim());
  const rows: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    for (const method of METHODS) {
      const op = ops[method];
      if (!op) continue;
      const params = (op.parameters ?? [])
        .map((p) => `${escapeHtml(p.name)} (${escapeHtml(p.in)}${p.required ? ', required' : ''})`)
        .join(', ');
      const codes = Object.keys(op.responses ?? {}).join(', ');
      rows.push(
        `<tr><td><code>${method.toUpperCase()}</code></td><td><code>${escapeHtml(path)}</code></td>` +
          `<td>${escapeHtml(op.summary ?? '')}</td><td>${params}</td><td>${escapeHtml(codes)}</td></tr>`,
      );
    }
  }
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${title}</title></head>
<body>
<h1>${title}</h1>
<p>Every endpoint of this gateway, from its OpenAPI document (<a href="/openapi.json">/openapi.json</a>).
Errors are JSON <code>{"error": {"code", "message"}}</code>; with tokens configured, send
<code>Authorization: Bearer &lt;token&gt;</code>. The full reference, with scopes, reach rules
and every error code, is in the package's <code>docs/http-api.md</code> and <code>docs/errors.md</code>.</p>
<table>
<thead><tr><th>method</th><th>path</th><th>what</th><th>parameters</th><th>responses</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
</body>
</html>
`;
}
