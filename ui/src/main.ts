/**
 * The operator dashboard (issue 11): the session (sign-in when tokens are configured), the live
 * view over one event stream, and the views chosen by the URL's hash: #/ overview, #/routes,
 * #/routes/<route>, #/streams, #/mqtt, #/dead-letters/<route>.
 */
import { html } from 'htm/preact';
import { render } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { type Alert, AlertTracker } from './alerts.js';
import { ApiError, rememberSession, request } from './api.js';
import { clock } from './format.js';
import { Live, type LiveStatus } from './live.js';
import type { SessionInfo, UiSnapshot } from './types.js';
import type { ViewProps } from './views/common.js';
import { DeadLetters } from './views/dead-letters.js';
import { Mqtt } from './views/mqtt.js';
import { Overview, type Rates } from './views/overview.js';
import { RouteDetail } from './views/route-detail.js';
import { Routes } from './views/routes.js';
import { SignIn } from './views/sign-in.js';
import { Streams } from './views/streams.js';

const STALE_MS = 5000;

interface Notice {
  id: number;
  kind: 'ok' | 'error';
  text: string;
}

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function useNow(ms: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

function Indicator({ status, lastAt, now }: { status: LiveStatus; lastAt: number | undefined; now: number }) {
  const stale = lastAt !== undefined && now - lastAt > STALE_MS && status !== 'paused';
  const label =
    status === 'paused'
      ? 'Paused'
      : status === 'reconnecting'
        ? 'Reconnecting'
        : status === 'connecting'
          ? 'Connecting'
          : stale
            ? `Stale since ${clock(lastAt!)}`
            : status === 'polling'
              ? 'Live (polling)'
              : 'Live';
  const kind = status === 'live' || status === 'polling' ? (stale ? 'stale' : 'live') : status;
  return html`<span class=${`indicator indicator-${kind}`} role="status" data-status=${kind}>
    <span class="dot" aria-hidden="true"></span>${label}
    ${lastAt !== undefined ? html`<small> · updated ${clock(lastAt)}</small>` : null}
  </span>`;
}

function Dashboard({ session, onSignOut }: { session: SessionInfo; onSignOut: () => void }) {
  const [view, setView] = useState<UiSnapshot | undefined>();
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const [lastAt, setLastAt] = useState<number | undefined>();
  const [rates, setRates] = useState<Rates | undefined>();
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [notices, setNotices] = useState<Notice[]>([]);
  const previous = useRef<UiSnapshot | undefined>(undefined);
  const tracker = useMemo(() => new AlertTracker(), []);
  const noticeId = useRef(0);
  const hash = useHash();
  const now = useNow(1000);

  const onSnapshot = useCallback(
    (v: UiSnapshot) => {
      const p = previous.current;
      if (p && v.at > p.at) {
        const s = (v.at - p.at) / 1000;
        setRates({
          inPerSecond: Math.max(0, v.totals.published - p.totals.published) / s,
          outPerSecond: Math.max(0, v.totals.forwarded - p.totals.forwarded) / s,
        });
      }
      previous.current = v;
      setAlerts(tracker.update(v));
      setView(v);
      setLastAt(Date.now());
    },
    [tracker],
  );
  const live = useMemo(
    () => new Live({ snapshot: onSnapshot, status: setStatus, unauthorized: onSignOut }),
    [onSignOut, onSnapshot],
  );
  useEffect(() => {
    live.start();
    return () => live.stop();
  }, [live]);

  const notify = (kind: Notice['kind'], text: string) => {
    const id = ++noticeId.current;
    setNotices((n) => [...n.slice(-3), { id, kind, text }]);
    setTimeout(() => setNotices((n) => n.filter((x) => x.id !== id)), 10_000);
  };
  const act: ViewProps['act'] = async (method, path, body, done) => {
    try {
      const answer = await request<never>(method, path, body);
      notify('ok', done(answer));
      // The view refreshes at once, not at the next tick.
      request<UiSnapshot>('GET', '/ui/snapshot').then(onSnapshot, () => {});
      return answer;
    } catch (err) {
      notify('error', err instanceof ApiError ? `Refused (${err.status}): ${err.message}` : String(err));
      if (err instanceof ApiError && err.status === 401) onSignOut();
      return undefined;
    }
  };
  const signOut = async () => {
    live.stop();
    await request('DELETE', '/ui/session').catch(() => {});
    onSignOut();
  };

  const canAct = session.scopes?.includes('admin') ?? false;
  const page = hash.replace(/^#\/?/, '');
  const dl = /^dead-letters\/(.+)$/.exec(page);
  const detail = /^routes\/(.+)$/.exec(page);
  const props: ViewProps | undefined = view ? { view, canAct, act, now } : undefined;
  const nav = [
    ['', 'Overview'],
    ['routes', 'Routes'],
    ['streams', 'Streams'],
    ['mqtt', 'MQTT'],
  ] as const;
  const current = dl || detail ? 'routes' : page;
  return html`<header class="top">
      <h1>Waystation</h1>
      <nav aria-label="Views">${nav.map(
        ([p, label]) =>
          html`<a key=${p} href=${`#/${p}`} aria-current=${current === p ? 'page' : undefined}>${label}</a>`,
      )}</nav>
      <div class="session">
        <${Indicator} status=${status} lastAt=${lastAt} now=${now} />
        <button type="button" aria-pressed=${status === 'paused'} onClick=${() => (status === 'paused' ? live.start() : live.pause())}>
          ${status === 'paused' ? 'Resume' : 'Pause'}</button>
        ${session.auth ? html`<span class="who">${session.name}${canAct ? '' : ' (read only)'}</span><button type="button" onClick=${signOut}>Sign out</button>` : null}
      </div>
    </header>
    <div class="notices" role="status" aria-live="polite">${notices.map(
      (n) => html`<p key=${n.id} class=${`notice notice-${n.kind}`}>${n.text}</p>`,
    )}</div>
    <main>${
      !props
        ? html`<p>Waiting for the gateway…</p>`
        : dl
          ? html`<${DeadLetters} ...${props} route=${decodeURIComponent(dl[1]!)} />`
          : detail
            ? html`<${RouteDetail} key=${detail[1]} ...${props} route=${decodeURIComponent(detail[1]!)} />`
            : page === 'routes'
              ? html`<${Routes} ...${props} />`
              : page === 'streams'
                ? html`<${Streams} ...${props} />`
                : page === 'mqtt'
                  ? html`<${Mqtt} ...${props} />`
                  : html`<${Overview} ...${props} rates=${rates} alerts=${alerts} /><${Routes} ...${props} />`
    }</main>`;
}

function App() {
  const [session, setSession] = useState<SessionInfo | undefined>();
  const [error, setError] = useState<string | undefined>();
  const load = useCallback(() => {
    request<SessionInfo>('GET', '/ui/session').then(
      (s) => {
        rememberSession(s);
        setSession(s);
        setError(undefined);
      },
      (err: Error) => {
        setError(err.message);
        setTimeout(load, 3000);
      },
    );
  }, []);
  useEffect(load, []);
  const signedOut = useCallback(() => {
    setSession(undefined);
    load();
  }, [load]);
  if (error && !session)
    return html`<main><p class="error" role="alert">The gateway does not answer: ${error} Retrying…</p></main>`;
  if (!session) return html`<main><p>Loading…</p></main>`;
  if (!session.signedIn)
    return html`<${SignIn} onSignedIn=${(s: SessionInfo) => {
      rememberSession(s);
      setSession(s);
    }} />`;
  return html`<${Dashboard} session=${session} onSignOut=${signedOut} />`;
}

const root = document.getElementById('app')!;
root.replaceChildren();
render(html`<${App} />`, root);
