import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { request } from '../api.js';
import { ago, clock, count } from '../format.js';
import type { MqttClient, MqttSubscriber, MqttTopic } from '../types.js';
import type { ViewProps } from './common.js';

const PROTOCOL: Record<MqttClient['protocolVersion'], string> = { 3: '3.1', 4: '3.1.1', 5: '5.0' };

interface Row extends MqttSubscriber {
  topic: string;
  stream: string;
}

const worst = (t: MqttTopic) => Math.max(0, ...t.subscribers.map((s) => s.behind));

/**
 * MQTT store-and-forward topics with every subscriber's position and lag (worst first), and the
 * connected clients. Read from the API at each live update, so Pause holds it too.
 */
export function Mqtt({ view, now }: ViewProps) {
  const [topics, setTopics] = useState<MqttTopic[] | undefined>();
  const [clients, setClients] = useState<MqttClient[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    Promise.all([
      request<{ topics: MqttTopic[] }>('GET', '/v1/mqtt/topics'),
      request<{ clients: MqttClient[] }>('GET', '/v1/mqtt/clients'),
    ]).then(
      ([t, c]) => {
        setTopics(t.topics);
        setClients(c.clients);
        setError(undefined);
      },
      (err: Error) => setError(err.message),
    );
  }, [view.at]);
  if (topics === undefined || clients === undefined)
    return html`<section><h2>MQTT</h2>${error ? html`<p class="error" role="alert">${error}</p>` : html`<p>Loading…</p>`}</section>`;
  const byLag = [...topics].sort((a, b) => worst(b) - worst(a) || (a.topic < b.topic ? -1 : 1));
  const rows: Row[] = topics
    .flatMap((t) => t.subscribers.map((s) => ({ ...s, topic: t.topic, stream: t.stream })))
    .sort((a, b) => b.behind - a.behind || (a.clientId < b.clientId ? -1 : 1));
  return html`<section aria-labelledby="mqtt-h">
    <h2 id="mqtt-h">MQTT store-and-forward topics</h2>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    ${
      topics.length === 0
        ? html`<p class="hint">No store-and-forward topics within this token's reach (or the broker is not enabled: an "mqtt" section in the configuration).</p>`
        : html`<div class="scroll"><table class="mqtt-topics">
      <thead><tr><th>Topic</th><th>Stream</th><th>Source</th><th class="num">Messages</th><th class="num">First seq</th><th class="num">Last seq</th><th class="num">Subscribers</th><th class="num">Worst lag</th></tr></thead>
      <tbody>${byLag.map(
        (
          t,
        ) => html`<tr key=${t.topic}><td><code>${t.topic}</code></td><td>${t.stream}</td><td>${t.source}</td>
          <td class="num">${count(t.messages)}</td><td class="num">${t.firstSeq}</td><td class="num">${t.lastSeq}</td>
          <td class="num">${t.subscribers.length}</td><td class=${`num${worst(t) > 0 ? ' lag-bad' : ''}`}>${count(worst(t))}</td></tr>`,
      )}</tbody></table></div>`
    }
    <h3>Subscribers, worst lag first</h3>
    <p class="hint">Position: the last seq the subscriber acknowledged; lag: the messages stored after it.</p>
    ${
      rows.length === 0
        ? html`<p class="hint">No subscribers tracked.</p>`
        : html`<div class="scroll"><table class="mqtt-subscribers">
      <thead><tr><th>Client id</th><th>Topic</th><th>Stream</th><th class="num">Position</th><th class="num">Lag</th><th class="num">Missed by retention</th><th>Connection</th></tr></thead>
      <tbody>${rows.map(
        (
          s,
        ) => html`<tr key=${`${s.stream}/${s.clientId}`}><td><code>${s.clientId}</code></td><td><code>${s.topic}</code></td><td>${s.stream}</td>
          <td class="num">${s.lastAcknowledgedSeq}</td><td class=${`num${s.behind > 0 ? ' lag-bad' : ''}`}>${count(s.behind)}</td>
          <td class="num">${count(s.missedByRetention)}</td><td>${s.connected ? 'connected' : 'away'}</td></tr>`,
      )}</tbody></table></div>`
    }
    <h3>Connected clients</h3>
    ${
      clients.length === 0
        ? html`<p class="hint">No MQTT clients connected${topics.length > 0 ? " within this token's reach" : ''}.</p>`
        : html`<div class="scroll"><table class="mqtt-clients">
      <thead><tr><th>Client id</th><th>User</th><th>Protocol</th><th>Remote</th><th class="num">Subscriptions</th><th class="num">Keep-alive</th><th>Connected since</th></tr></thead>
      <tbody>${clients.map(
        (
          c,
        ) => html`<tr key=${c.clientId}><td><code>${c.clientId}</code></td><td>${c.username ?? '(anonymous)'}</td>
          <td>MQTT ${PROTOCOL[c.protocolVersion]}</td><td>${c.remote}</td><td class="num">${c.subscriptions}</td>
          <td class="num">${c.keepAliveSeconds > 0 ? `${c.keepAliveSeconds} s` : 'none'}</td>
          <td>${clock(c.connectedAt)} (${ago(c.connectedAt, now)} ago)</td></tr>`,
      )}</tbody></table></div>`
    }
  </section>`;
}
