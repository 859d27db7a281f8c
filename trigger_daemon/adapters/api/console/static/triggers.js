// The Triggers page: every trigger with its last 24 hours of occurrences, search by name, a
// form to create one (the API's validation problems shown at their fields) and deletion of
// API triggers after a confirmation.

import { allPages, api, ApiError, encode, withQuery } from './api.js';
import { clearErrors, errorBox, field, fill, h, showFieldError } from './dom.js';

export function rateLimitText(trigger) {
  const parts = [];
  if (trigger.rateLimit) {
    const { requestsPerUnit, unit, burst } = trigger.rateLimit;
    parts.push(`${requestsPerUnit}/${unit}, burst ${burst}`);
  }
  if (trigger.maxConcurrency) parts.push(`≤ ${trigger.maxConcurrency} at once`);
  return parts.length ? parts.join('; ') : '—';
}

export function sourceText(trigger) {
  return trigger.source === 'yaml' ? 'YAML (read-only)' : 'API';
}

function countsText(counts) {
  if (!counts) return 'none';
  return ['succeeded', 'failed', 'pending']
    .map((status) => `${counts[status] ?? 0} ${status}`)
    .join(' · ');
}

/** The trigger body the form describes (the API validates it). */
export function triggerBody(form) {
  const value = (name) => form.elements[name]?.value.trim() ?? '';
  const body = { event: value('event'), workflowID: value('workflowID') };
  if (value('name')) body.name = value('name');
  if (value('version')) body.version = value('version');
  if (value('filter')) body.filter = value('filter');
  const vars = {};
  for (const line of value('vars').split('\n')) {
    if (!line.trim()) continue;
    const at = line.indexOf('=');
    // A line without "=" is sent as a name with an empty expression: the API says what is wrong.
    if (at < 0) vars[line.trim()] = '';
    else vars[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  if (Object.keys(vars).length) body.vars = vars;
  if (value('requestsPerUnit')) {
    body.rateLimit = { requestsPerUnit: Number(value('requestsPerUnit')), unit: value('unit') || 'second' };
    if (value('burst')) body.rateLimit.burst = Number(value('burst'));
  }
  if (value('maxConcurrency')) body.maxConcurrency = Number(value('maxConcurrency'));
  return body;
}

/** The definition fields, for the create form and the unsaved-trigger test form. */
export function definitionFields(form) {
  return [
    field({ form, name: 'name', label: 'Name' }),
    field({ form, name: 'event', label: 'Event type', required: true, placeholder: 'COMMITTED_TRANSACTIONS' }),
    field({ form, name: 'version', label: 'Version', placeholder: 'v2' }),
    field({ form, name: 'filter', label: 'Filter (JMESPath)', type: 'textarea',
      placeholder: 'event.transactions[0].postings[0].amount > `1000`' }),
    field({ form, name: 'workflowID', label: 'Workflow ID', required: true }),
    field({ form, name: 'vars', label: 'Vars', type: 'textarea', hint: 'One per line: name = JMESPath expression' }),
  ];
}

const FIELD_OF = { workflowid: 'workflowID', ratelimit: 'requestsPerUnit', maxconcurrency: 'maxConcurrency' };

/** Show each problem of a VALIDATION message ("invalid trigger: field: problem; ...") at its
 * field; those naming no field of the form go in `formError`. */
export function showValidation(form, formError, error) {
  if (error.status !== 400) {
    formError.hidden = false;
    fill(formError, error.plain);
    return;
  }
  const message = error.message.replace(/^invalid trigger: /, '');
  const unplaced = [];
  for (const problem of message.split('; ')) {
    const named = /^([A-Za-z][A-Za-z0-9]*)/.exec(problem);
    let name = named ? named[1] : '';
    name = FIELD_OF[name.toLowerCase()] ?? name;
    if (!showFieldError(form, name, problem)) unplaced.push(problem);
  }
  if (unplaced.length) {
    formError.hidden = false;
    fill(formError, unplaced.join('; '));
  }
}

function createForm(onCreated) {
  const formError = h('p', { class: 'form-error error', role: 'alert', hidden: true });
  const form = h('form', { id: 'create-form', class: 'grid-form', novalidate: true },
    definitionFields('create'),
    h('fieldset', {},
      h('legend', {}, 'Flow control (optional)'),
      field({ form: 'create', name: 'requestsPerUnit', label: 'Rate limit: requests per unit', type: 'number', min: 1 }),
      field({ form: 'create', name: 'unit', label: 'Unit', options: ['second', 'minute', 'hour'] }),
      field({ form: 'create', name: 'burst', label: 'Burst', type: 'number', min: 1 }),
      field({ form: 'create', name: 'maxConcurrency', label: 'Max concurrency', type: 'number', min: 1 })),
    formError,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create trigger')));
  form.addEventListener('submit', async (submitted) => {
    submitted.preventDefault();
    clearErrors(form);
    try {
      const answer = await api('POST', '/v2/triggers', triggerBody(form));
      form.reset();
      onCreated(answer.data);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showValidation(form, formError, error);
    }
  });
  return h('details', { class: 'panel' }, h('summary', {}, 'Create a trigger'), form);
}

function deleteCell(trigger, onDeleted) {
  if (trigger.source === 'yaml') return h('span', { class: 'muted' }, 'read-only');
  const cell = h('div', { class: 'row-actions' });
  const ask = () => fill(cell,
    h('span', {}, `Delete ${trigger.name ?? trigger.id}? `),
    h('button', { type: 'button', class: 'danger', onclick: remove }, 'Yes, delete'),
    h('button', { type: 'button', onclick: reset }, 'Cancel'));
  const reset = () => fill(cell, h('button', { type: 'button', onclick: ask, 'aria-label': `Delete ${trigger.name ?? trigger.id}` }, 'Delete'));
  async function remove() {
    try {
      await api('DELETE', `/v2/triggers/${encode(trigger.id)}`);
      onDeleted(trigger);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      fill(cell, errorBox(error.plain));
    }
  }
  reset();
  return cell;
}

function table(triggers, counts, onDeleted) {
  if (!triggers.length) return h('p', {}, 'No triggers.');
  const byTrigger = new Map(counts.map((row) => [row.triggerID, row]));
  return h('div', { class: 'table-wrap' }, h('table', { id: 'triggers-table' },
    h('caption', {}, 'Triggers, oldest first; occurrences over the last 24 hours'),
    h('thead', {}, h('tr', {}, ['Name', 'Event', 'Version', 'Filter', 'Workflow', 'Source',
      'Rate limit', 'Last 24 h', 'Actions'].map((title) => h('th', { scope: 'col' }, title)))),
    h('tbody', {}, triggers.map((trigger) => h('tr', { 'data-trigger-id': trigger.id },
      h('td', { 'data-label': 'Name' }, h('a', { href: `#/trigger/${encode(trigger.id)}` }, trigger.name ?? trigger.id)),
      h('td', { 'data-label': 'Event' }, trigger.event),
      h('td', { 'data-label': 'Version' }, trigger.version ?? 'any'),
      h('td', { 'data-label': 'Filter' }, trigger.filter ? h('code', {}, trigger.filter) : '—'),
      h('td', { 'data-label': 'Workflow' }, trigger.workflowID),
      h('td', { 'data-label': 'Source', class: 'source' }, sourceText(trigger)),
      h('td', { 'data-label': 'Rate limit' }, rateLimitText(trigger)),
      h('td', { 'data-label': 'Last 24 h', class: 'counts' }, countsText(byTrigger.get(trigger.id))),
      h('td', { 'data-label': 'Actions' }, deleteCell(trigger, onDeleted)))))));
}

export function triggersPage(main, _params, { notify }) {
  const list = h('div', { id: 'triggers-list', 'aria-live': 'polite' }, h('p', {}, 'Loading…'));
  const search = h('input', { id: 'trigger-search', type: 'search', name: 'name', autocomplete: 'off' });
  let shown = 0;
  async function load() {
    const request = ++shown;
    try {
      const [triggers, counts] = await Promise.all([
        allPages(withQuery('/v2/triggers', { pageSize: 100, name: search.value.trim() })),
        api('GET', withQuery('/v2/occurrence-counts', { since: '24h' })),
      ]);
      if (request === shown) fill(list, table(triggers, counts.data.triggers, deleted));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (request === shown) fill(list, errorBox(error.plain));
    }
  }
  function deleted(trigger) {
    notify(`Deleted trigger ${trigger.name ?? trigger.id}.`);
    load();
  }
  function created(trigger) {
    notify(`Created trigger ${trigger.name ?? trigger.id}.`);
    load();
  }
  let typing;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(load, 250);
  });
  fill(main,
    h('h1', {}, 'Triggers'),
    h('form', { class: 'search', role: 'search', onsubmit: (event) => { event.preventDefault(); load(); } },
      h('label', { for: 'trigger-search' }, 'Search by name'), search,
      h('button', { type: 'submit' }, 'Search')),
    createForm(created),
    list);
  load();
  return { reload: load };
}
