/** A small client for the gateway's HTTP API, used by the CLI (undici). */
import { request } from 'undici';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

export class ApiClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  get<T>(path: string): Promise<T> {
    return this.send<T>('GET', path);
  }

  async send<T>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body?: string | NodeJS.ReadableStream,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const url = new URL(path, this.baseUrl);
    const all: Record<string, string> = { ...headers };
    if (this.token) all.authorization = `Bearer ${this.token}`;
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(url, { method, headers: all, body: body as string | undefined });
    } catch (err) {
      throw new ApiError(`cannot reach ${this.baseUrl}: ${(err as Error).message}`, 0, undefined);
    }
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.statusCode >= 400) {
      const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      const detail = error?.message ?? (text.slice(0, 200) || `HTTP ${res.statusCode}`);
      throw new ApiError(`${detail}${error?.code ? ` (${error.code})` : ''}`, res.statusCode, error?.code);
    }
    return json as T;
  }
}
