// Overview: headline figures and charts of the last five minutes, from /metrics every 2 s. Rates are differences
// of the broker's counters between two samples, so nothing is counted twice and a missed sample costs nothing.
import { ApiError, get } from '../api.js';
import { byId, bytes, duration, el, figure, fill } from '../dom.js';
import { drawChart } from '../plot.js';
import { parseMetrics, total } from '../prometheus.js';

const WINDOW_SECONDS = 300;
const series = { connections: [], in: [], out: [], dropped: [] };
let previous;
let latest = {};
let brokerInfo;
let metricsRefused;

function keep(name, t, v) {
  const samples = series[name];
  samples.push({ t, v });
  while (samples.length > 0 && samples[0].t < t - WINDOW_SECONDS * 1000 - 5000) samples.shift();
}

/** Per second between two readings of a counter; undefined across a restart (the counter went back). */
function rate(now, before, seconds) {
  if (now === undefined || before === undefined || seconds <= 0 || now < before) return undefined;
  return (now - before) / seconds;
}

async function sample() {
  const t = Date.now();
  if (metricsRefused) {
    // Without the metrics scope only the connection count can be followed, from /api/v1/broker (one process).
    const info = await get('/api/v1/broker');
    brokerInfo = info;
    latest = { connections: info.connected_clients, sessions: info.sessions };
    if (info.connected_clients !== undefined) keep('connections', t, info.connected_clients);
    return render();
  }
  let text;
  try {
    text = await get('/metrics');
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      metricsRefused = err.message;
      return sample();
    }
    throw err;
  }
  const m = parseMetrics(text);
  const counters = {
    t,
    received: total(m, 'moat_messages_received_total'),
    sent: total(m, 'moat_messages_sent_total'),
    dropped: total(m, 'moat_messages_dropped_total'),
  };
  latest = {
    connections: total(m, 'moat_connections'),
    sessionsOnline: total(m, 'moat_sessions', { state: 'online' }),
    sessionsOffline: total(m, 'moat_sessions', { state: 'offline' }),
    subscriptions: total(m, 'moat_subscriptions'),
    retained: total(m, 'moat_retained_messages'),
    queued: total(m, 'moat_queued_messages'),
    inflight: total(m, 'moat_inflight_messages'),
    memory: total(m, 'moat_memory_held_bytes'),
    highWater: total(m, 'moat_memory_high_water_bytes'),
    overloaded: total(m, 'moat_overloaded'),
    bans: total(m, 'moat_guard_bans_active'),
    authFailures: total(m, 'moat_guard_authentication_failures_total'),
    refusedByBans: total(m, 'moat_guard_refused_total'),
    droppedTotal: counters.dropped,
  };
  keep('connections', t, latest.connections);
  if (previous) {
    const seconds = (t - previous.t) / 1000;
    latest.in = rate(counters.received, previous.received, seconds);
    latest.out = rate(counters.sent, previous.sent, seconds);
    latest.dropped = rate(counters.dropped, previous.dropped, seconds);
    if (latest.in !== undefined) keep('in', t, latest.in);
    if (latest.out !== undefined) keep('out', t, latest.out);
    if (latest.dropped !== undefined) keep('dropped', t, latest.dropped);
  }
  previous = counters;
  render();
}

function tile(label, value, { alert = false, id } = {}) {
  return el('div', { class: alert ? 'tile alert' : 'tile', 'data-tile': id }, el('div', { class: 'value' }, value), el('div', { class: 'label' }, label));
}

function render() {
  if (byId('view-overview').hidden) return;
  const l = latest;
  fill(byId('tiles'),
    tile('Connections', figure(l.connections), { id: 'connections' }),
    tile('Messages in / s', figure(l.in), { id: 'in' }),
    tile('Messages out / s', figure(l.out), { id: 'out' }),
    tile('Dropped / s', figure(l.dropped), { alert: l.dropped > 0, id: 'dropped' }),
    l.sessionsOnline !== undefined && tile('Sessions (offline)', `${figure(l.sessionsOnline + l.sessionsOffline)} (${figure(l.sessionsOffline)})`),
    l.sessions !== undefined && tile('Sessions', figure(l.sessions)),
    l.subscriptions !== undefined && tile('Subscriptions', figure(l.subscriptions)),
    l.retained !== undefined && tile('Retained messages', figure(l.retained)),
    l.queued !== undefined && tile('Queued / in flight', `${figure(l.queued)} / ${figure(l.inflight)}`),
    l.memory !== undefined && tile(`${l.overloaded ? 'Memory: OVERLOADED' : 'Memory held'}${l.highWater ? ` (high water ${bytes(l.highWater)})` : ''}`, bytes(l.memory), { alert: l.overloaded > 0 }),
    l.bans !== undefined && tile('Bans in force', figure(l.bans)),
    l.authFailures !== undefined && tile('Failed logins (total)', figure(l.authFailures)),
    l.refusedByBans !== undefined && tile('Refused by bans (total)', figure(l.refusedByBans)),
    brokerInfo && tile('Uptime', duration(brokerInfo.uptime_seconds ?? 0)),
  );
  const note = byId('metrics-note');
  note.hidden = !metricsRefused;
  if (metricsRefused) fill(note, `Message rates need /metrics, which this credential may not read (${metricsRefused}): only connections are shown.`);
  const now = Date.now();
  const options = { windowSeconds: WINDOW_SECONDS, now, format: figure };
  drawChart(byId('chart-connections'), series.connections, options);
  drawChart(byId('chart-in'), series.in, options);
  drawChart(byId('chart-out'), series.out, options);
  drawChart(byId('chart-dropped'), series.dropped, options);
}

export const overview = {
  live: true,
  init() {
    window.addEventListener('resize', render);
  },
  show: render,
  refresh: sample,
  sample,
  broker(info) {
    brokerInfo = info;
  },
};
