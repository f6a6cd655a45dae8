/**
 * Reading a configuration file: YAML or JSON (by extension; YAML is a superset, so anything else
 * parses as YAML), duplicate keys rejected, then `${ENV_VAR}` (or `${ENV_VAR:-default}`)
 * substituted in string values. A missing variable without a default is an error naming the
 * config path, not a silent empty string.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { ConfigError, type ConfigIssue } from '../errors.js';

export async function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read ${path}: ${(err as Error).message}` }]);
  }
  return parseConfigText(text, path, env);
}

export function parseConfigText(text: string, source: string, env: NodeJS.ProcessEnv = process.env): unknown {
  let data: unknown;
  if (source.endsWith('.json')) {
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new ConfigError([
        { path: '', message: `${source} is not valid JSON: ${(err as Error).message}` },
      ]);
    }
  } else {
    const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
    if (doc.errors.length > 0) {
      throw new ConfigError(doc.errors.map((e) => ({ path: '', message: `${source}: ${e.message}` })));
    }
    data = doc.toJS();
  }
  const issues: ConfigIssue[] = [];
  const substituted = substitute(data, '', env, issues);
  if (issues.length > 0) throw new ConfigError(issues);
  return substituted;
}

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

function substitute(value: unknown, path: string, env: NodeJS.ProcessEnv, issues: ConfigIssue[]): unknown {
  if (typeof value === 'string') {
    return value.replace(VAR, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined) return v;
      if (fallback !== undefined) return fallback;
      issues.push({
        path,
        message: `environment variable ${name} is not set (write \${${name}:-default} for a default)`,
      });
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, `${path}[${i}]`, env, issues));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = substitute(v, path ? `${path}.${k}` : k, env, issues);
    return out;
  }
  return value;
}
