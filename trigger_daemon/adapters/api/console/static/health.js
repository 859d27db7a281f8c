// The health strip on every page: readiness (/readyz, open to all) and this process's activity
// (/v2/status: events and matches per second over the last minute, in flight, lag, circuit).

import { api, ApiError } from './api.js';
import { fill, h } from './dom.js';

const EVERY_MS = 5000;

function rate(value) {
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

async function readiness() {
  // At the origin's root: the daemon serves /readyz there only.
  try {
    const response = await fetch('/readyz', { cache: 'no-store' });
    return await response.json();
  } catch {
    return null;
  }
}

function item(label, value, state) {
  return h('span', { class: `health-item${state ? ` health-${state}` : ''}` },
    h('span', { class: 'muted' }, `${label}: `), h('strong', {}, value));
}

// After a 401, the status waits for a token (refresh() after one is given) instead of asking
// again every few seconds.
let refused = null;

async function activity() {
  if (refused) return refused;
  try {
    return (await api('GET', '/v2/status')).data;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) refused = error;
    return error;
  }
}

async function refresh(strip) {
  const [ready, status] = await Promise.all([readiness(), activity()]);
  const items = [];
  if (ready) {
    const failing = Object.entries(ready.checks).filter(([, passed]) => !passed).map(([name]) => name);
    items.push(item('Readiness', failing.length ? `✗ not ready (${failing.join(', ')})` : '✓ ready',
      failing.length ? 'bad' : 'good'));
  } else {
    items.push(item('Readiness', 'unknown'));
  }
  if (status instanceof ApiError) {
    items.push(h('span', { class: 'health-item' }, `Activity: ${status.plain}`));
  } else {
    const window = `${Math.round(status.windowSeconds)} s`;
    items.push(
      item(`Events/s (last ${window})`, rate(status.eventsPerSecond)),
      item('Matches/s', rate(status.matchesPerSecond)),
      item('In flight', String(status.inFlight)),
      item('Consumer lag', status.consumerLag ?? '—'),
      item('Circuit', status.circuit === 'closed' ? '✓ closed' : `✗ ${status.circuit}`,
        status.circuit === 'closed' ? 'good' : 'bad'),
    );
    if (status.circuitReason) items.push(h('span', { class: 'health-item' }, status.circuitReason));
  }
  fill(strip, items);
}

/** Keep `strip` current; `refresh()` of the answer asks again now (after a new token). */
export function startHealth(strip) {
  const tick = () => refresh(strip);
  tick();
  setInterval(tick, EVERY_MS);
  return {
    refresh: () => {
      refused = null;
      tick();
    },
  };
}
