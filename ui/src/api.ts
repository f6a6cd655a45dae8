/**
 * Talking to the gateway: JSON requests with the session's CSRF value on every mutation, and
 * errors in the API's shape turned into messages an operator can read.
 */
import type { SessionInfo } from './types.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let csrf: string | undefined;

/** Remembers the session's CSRF value (from GET /ui/session) for later mutations. */
export function rememberSession(info: SessionInfo): void {
  csrf = info.csrf;
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-waystation-csrf'] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const err = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(res.status, err?.message ?? `${method} ${path} answered ${res.status}.`);
  }
  return parsed as T;
}

export const enc = encodeURIComponent;
