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

async function refused(res: Response, method: string, path: string): Promise<ApiError> {
  let message = `${method} ${path} answered ${res.status}.`;
  try {
    const body = (await res.json()) as { error?: { message?: string } };
    if (body.error?.message) message = body.error.message;
  } catch {
    // Not the API's error shape: the status says enough.
  }
  return new ApiError(res.status, message);
}

/** A response's bytes and headers (a payload, which is not JSON). */
export async function fetchBytes(path: string): Promise<{ bytes: Uint8Array; headers: Headers }> {
  const res = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  if (!res.ok) throw await refused(res, 'GET', path);
  return { bytes: new Uint8Array(await res.arrayBuffer()), headers: res.headers };
}

/**
 * Saves what a POST answers as a file (an export of a selection, whose ids do not fit in a
 * link's URL). The response is held in memory until saved: only selections go this way.
 */
export async function downloadPost(path: string, body: unknown, filename: string): Promise<void> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (csrf) headers['x-waystation-csrf'] = csrf;
  const res = await fetch(path, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (!res.ok) throw await refused(res, 'POST', path);
  const url = URL.createObjectURL(await res.blob());
  try {
    saveAs(url, filename);
  } finally {
    // The click has started the download; the URL is no longer needed.
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}

/** Starts the download of a same-origin URL (the session cookie goes with it). */
export function saveAs(url: string, filename: string): void {
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.click();
}
