// Backtests (a dry run over the events in Kafka: counts and samples) and backfills (the same
// window run for real): start one for a trigger and a window, watch it, cancel it.

import { allPages, api, ApiError, encode } from './api.js';
import { errorBox, field, fill, h, pretty, statusBadge, time } from './dom.js';

const POLL_MS = 1000;

const KINDS = {
  backtest: {
    path: '/v2/backtests',
    title: 'Backtests',
    intro: 'A backtest counts what a trigger would have done over the events already in Kafka; nothing is called or written.',
    counts: ['scanned', 'matched', 'filterErrors', 'varErrors', 'alreadyOccurred', 'unprocessable'],
  },
  backfill: {
    path: '/v2/backfills',
    title: 'Backfills',
    intro: 'A backfill runs a trigger for real over a past window: each matched event gets an occurrence, once.',
    counts: ['scanned', 'matched', 'ran', 'skipped', 'failed'],
  },
};

function progressText(job) {
  const progress = job.progress;
  if (progress && typeof progress === 'object' && progress.total) {
    const percent = Math.min(100, Math.round((100 * progress.read) / progress.total));
    return `${progress.read} of ~${progress.total} records read (${percent}%)`;
  }
  if (typeof progress === 'number') return `${Math.round(progress * 100)}%`;
  return '';
}

function samples(job) {
  if (!job.samples?.length) return null;
  return h('details', {}, h('summary', {}, `Samples (${job.samples.length})`),
    h('div', { class: 'table-wrap' }, h('table', { class: 'compact' },
      h('thead', {}, h('tr', {}, ['Date', 'Event', 'Where', 'Vars or error'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, job.samples.map((sample) => h('tr', {},
        h('td', {}, time(sample.date)), h('td', {}, sample.eventID),
        h('td', {}, `${sample.topic}[${sample.partition}]@${sample.offset}`),
        h('td', {}, sample.error ? `error: ${sample.error}` : pretty(sample.vars))))))));
}

function jobCard(kind, job, names, onCancel) {
  const counts = KINDS[kind].counts.filter((name) => job[name] !== undefined);
  const trigger = job.triggerID ? (names.get(job.triggerID) ?? job.triggerID) : 'unsaved trigger';
  return h('article', { class: `job job-${job.status}`, 'data-id': job.id },
    h('h3', {}, `${trigger} `, statusBadge(job.status)),
    h('p', { class: 'muted' }, 'Window ', time(job.since), ' → ', time(job.until), ` · started `, time(job.startedAt)),
    h('p', { class: 'progress' }, progressText(job)),
    h('dl', { class: 'counts' }, counts.map((name) => [h('dt', {}, name), h('dd', { 'data-count': name }, String(job[name]))])),
    job.error ? errorBox(job.error) : null,
    samples(job),
    job.status === 'running'
      ? h('button', { type: 'button', class: 'cancel', onclick: () => onCancel(job) }, 'Cancel') : null);
}

function section(kind, triggers, names) {
  const spec = KINDS[kind];
  const list = h('div', { class: 'jobs', id: `${kind}-list`, 'aria-live': 'polite' });
  const formError = h('p', { class: 'form-error error', role: 'alert', hidden: true });
  const form = h('form', { id: `${kind}-form`, class: 'grid-form', novalidate: true },
    field({ form: kind, name: 'triggerID', label: 'Trigger', options: triggers.map((t) => t.id), required: true }),
    field({ form: kind, name: 'since', label: 'Since', value: '24h', required: true, hint: 'RFC 3339 or a duration back from now (24h, 7d)' }),
    field({ form: kind, name: 'until', label: 'Until', hint: 'Empty: now' }),
    formError,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, `Start ${kind}`)));
  // Trigger names in the select, ids as values.
  for (const option of form.querySelectorAll('option')) option.textContent = names.get(option.value) ?? option.value;
  let timer = null;

  async function load() {
    clearTimeout(timer);
    try {
      const answer = await api('GET', spec.path);
      const jobs = answer.data;
      fill(list, jobs.length ? jobs.map((job) => jobCard(kind, job, names, cancel)) : h('p', {}, `No ${kind}s yet.`));
      if (jobs.some((job) => job.status === 'running')) timer = setTimeout(load, POLL_MS);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 404 || error.status === 405) {
        fill(list, h('p', {}, `This daemon does not serve ${kind}s.`));
        form.hidden = true;
      } else {
        fill(list, errorBox(error.plain));
      }
    }
  }
  async function cancel(job) {
    try {
      await api('DELETE', `${spec.path}/${encode(job.id)}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      fill(formError, error.plain);
      formError.hidden = false;
    }
    load();
  }
  form.addEventListener('submit', async (submitted) => {
    submitted.preventDefault();
    formError.hidden = true;
    const body = { triggerID: form.elements.triggerID.value, since: form.elements.since.value.trim() };
    if (form.elements.until.value.trim()) body.until = form.elements.until.value.trim();
    try {
      await api('POST', spec.path, body);
      load();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      formError.hidden = false;
      fill(formError, error.plain);
    }
  });
  load();
  return {
    element: h('section', { class: 'panel', 'aria-labelledby': `${kind}-title` },
      h('h2', { id: `${kind}-title` }, spec.title), h('p', {}, spec.intro), form, list),
    stop: () => clearTimeout(timer),
  };
}

export function backtestsPage(main) {
  const sections = [];
  fill(main, h('h1', {}, 'Backtests & backfills'), h('p', {}, 'Loading triggers…'));
  allPages('/v2/triggers?pageSize=1000').then((triggers) => {
    const names = new Map(triggers.map((trigger) => [trigger.id, trigger.name ?? trigger.id]));
    sections.push(section('backtest', triggers, names), section('backfill', triggers, names));
    fill(main, h('h1', {}, 'Backtests & backfills'), sections.map((s) => s.element));
  }, (error) => {
    if (!(error instanceof ApiError)) throw error;
    fill(main, h('h1', {}, 'Backtests & backfills'), errorBox(error.plain));
  });
  return { stop: () => sections.forEach((s) => s.stop()) };
}
