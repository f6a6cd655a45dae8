import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { request } from '../api.js';
import type { SessionInfo } from '../types.js';

/** The sign-in form: exchanges a token for a session cookie (POST /ui/session). */
export function SignIn({ onSignedIn }: { onSignedIn: (info: SessionInfo) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onSignedIn(await request<SessionInfo>('POST', '/ui/session', { token: token.trim() }));
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
      setToken('');
    }
  };
  return html`<main class="sign-in">
    <h1>Waystation</h1>
    <form onSubmit=${submit}>
      <label for="token">Token</label>
      <input id="token" name="token" type="password" autocomplete="off" required value=${token}
        onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)} />
      <button type="submit" disabled=${busy}>Sign in</button>
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    </form>
    <p class="hint">Use a token from <code>auth.tokens</code> (made with <code>waystation hash-token</code>).
      The page keeps only a session cookie, never the token.</p>
  </main>`;
}
