#!/usr/bin/env node
// Builds the operator dashboard (issue 11): ui/src/main.ts and ui/src/style.css, bundled by
// esbuild (Preact + htm included, nothing loaded at run time) into dist/ui/assets/ with content
// hashes in their names, and dist/ui/index.html naming them. `npm run build` runs it after tsc;
// it needs no network. Prints the bundle's size.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'ui');

// Nothing is removed before the new files are in place (a running gateway or test may be serving
// them): the same sources give the same hashed names, index.html is replaced atomically, and only
// then are assets that index.html no longer names deleted.
await mkdir(join(out, 'assets'), { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { app: 'ui/src/main.ts', style: 'ui/src/style.css' },
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  platform: 'browser',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});

const files = Object.keys(result.metafile.outputs).map((f) => basename(f));
const js = files.find((f) => f.endsWith('.js'));
const css = files.find((f) => f.endsWith('.css'));
if (!js || !css) throw new Error(`build-ui: expected a .js and a .css output, got ${files.join(', ')}`);
const template = await readFile(join(root, 'ui', 'index.html'), 'utf8');
const staged = join(out, `index.html.${process.pid}.tmp`);
await writeFile(
  staged,
  template.replace('%APP_JS%', `/ui/assets/${js}`).replace('%APP_CSS%', `/ui/assets/${css}`),
);
await rename(staged, join(out, 'index.html'));
for (const f of await readdir(join(out, 'assets')))
  if (f !== js && f !== css) await rm(join(out, 'assets', f), { force: true });

let total = 0;
let gzipped = 0;
for (const f of [js, css]) {
  const body = await readFile(join(out, 'assets', f));
  total += body.byteLength;
  gzipped += gzipSync(body).byteLength;
}
console.log(
  `build-ui: dist/ui (${js}, ${css}): ${(total / 1024).toFixed(1)} KiB, ${(gzipped / 1024).toFixed(1)} KiB gzipped`,
);
