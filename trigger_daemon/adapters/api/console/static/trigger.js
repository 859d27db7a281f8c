// A trigger's page: its definition, a test panel, and its occurrences (newest first, filtered
// by status and time, paged with the cursor), each opening to its event, vars, attempts,
// error and workflow instance; a failed one can run again.

import { api, ApiError, encode, withQuery } from './api.js';
import { errorBox, fill, h, pretty, statusBadge, time } from './dom.js';
import { testResult } from './explain.js';
import { rateLimitText, sourceText } from './triggers.js';

function definition(trigger) {
  const rows = [
    ['ID', trigger.id], ['Name', trigger.name ?? '—'], ['Event type', trigger.event],
    ['Version', trigger.version ?? 'any'], ['Filter', trigger.filter ? h('code', {}, trigger.filter) : '—'],
    ['Workflow', trigger.workflowID], ['Source', sourceText(trigger)], ['Rate limit', rateLimitText(trigger)],
    ['Retry', trigger.retry ? JSON.stringify(trigger.retry) : 'the daemon\'s policy'],
    ['Created', time(trigger.createdAt)],
  ];
  const vars = Object.entries(trigger.vars ?? {});
  return h('section', { class: 'panel', 'aria-labelledby': 'definition-title' },
    h('h2', { id: 'definition-title' }, 'Definition'),
    h('dl', { class: 'definition' }, rows.map(([label, value]) => [h('dt', {}, label), h('dd', {}, value)])),
    vars.length ? h('table', { class: 'compact' },
      h('caption', {}, 'Vars'),
      h('tbody', {}, vars.map(([name, expression]) => h('tr', {}, h('th', { scope: 'row' }, name), h('td', {}, h('code', {}, expression))))))
      : null);
}

function occurrenceDetails(trigger, occurrence, onChanged) {
  const outcome = h('div', { class: 'retry-outcome', 'aria-live': 'polite' });
  const status = h('dd', {});
  const attempts = h('dd', {});
  const instance = h('dd', { class: 'instance' });
  const error = h('dd', { class: 'occurrence-error' });
  const runAgain = h('button', { type: 'button', class: 'run-again' }, 'Run again');
  const actions = h('div', { class: 'actions' }, runAgain, outcome);
  function show(now) {
    fill(status, statusBadge(now.status));
    fill(attempts, String(now.attempts));
    fill(instance, now.workflowInstanceID ?? '—');
    fill(error, now.error ?? '—');
    runAgain.hidden = now.status !== 'failed';
  }
  runAgain.addEventListener('click', async () => {
    runAgain.disabled = true;
    fill(outcome, 'Running again…');
    try {
      const answer = await api('POST',
        `/v2/triggers/${encode(trigger.id)}/occurrences/${encode(occurrence.id)}/retry`);
      const now = answer.data;
      fill(outcome, 'Ran again: ', statusBadge(now.status),
        now.workflowInstanceID ? ` — workflow instance ${now.workflowInstanceID}` : null,
        now.error ? ` — ${now.error}` : null);
      show(now);
      onChanged(now);
    } catch (problem) {
      if (!(problem instanceof ApiError)) throw problem;
      fill(outcome, errorBox(problem.plain));
    }
    runAgain.disabled = false;
  });
  show(occurrence);
  return h('div', { class: 'occurrence-details' },
    h('div', {},
      h('dl', { class: 'definition' },
        h('dt', {}, 'Occurrence'), h('dd', {}, occurrence.id),
        h('dt', {}, 'Status'), status,
        h('dt', {}, 'Attempts'), attempts,
        h('dt', {}, 'Workflow instance'), instance,
        h('dt', {}, 'Error'), error),
      occurrence.status === 'failed' ? actions : null,
      h('h4', {}, 'Vars'), pretty(occurrence.vars)),
    h('div', {}, h('h4', {}, 'Event'), pretty(occurrence.event)));
}

function occurrencesPanel(trigger, onPage) {
  const status = h('select', { id: 'occ-status', name: 'status' },
    ['', 'failed', 'pending', 'succeeded', 'pending,failed'].map((value) => h('option', { value }, value || 'any')));
  const since = h('input', { id: 'occ-since', name: 'since', type: 'datetime-local', step: 1 });
  const until = h('input', { id: 'occ-until', name: 'until', type: 'datetime-local', step: 1 });
  const pageSize = h('select', { id: 'occ-page-size', name: 'pageSize' },
    ['10', '25', '100'].map((value) => h('option', { value, selected: value === '25' }, value)));
  const body = h('div', { id: 'occurrences', 'aria-live': 'polite' });
  const pager = h('div', { class: 'pager' });
  let page = 1;

  const iso = (input) => (input.value ? new Date(input.value).toISOString() : '');
  async function load(cursor, number) {
    const path = `/v2/triggers/${encode(trigger.id)}/occurrences`;
    const query = cursor ? { cursor } : {
      pageSize: pageSize.value, status: status.value, since: iso(since), until: iso(until),
    };
    try {
      const answer = await api('GET', withQuery(path, query));
      page = number;
      show(answer.cursor);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      fill(body, errorBox(error.plain));
    }
  }
  function show(cursor) {
    onPage(cursor.data);
    if (!cursor.data.length) {
      fill(body, h('p', {}, 'No occurrences.'));
    } else {
      const rows = cursor.data.map((occurrence) => occurrenceRows(occurrence));
      fill(body, h('div', { class: 'table-wrap' }, h('table', { id: 'occurrences-table' },
        h('thead', {}, h('tr', {}, ['Date', 'Status', 'Event', 'Attempts', 'Workflow instance', ''].map((t) => h('th', { scope: 'col' }, t)))),
        rows.map(([row, details]) => h('tbody', {}, row, details)))));
    }
    fill(pager,
      h('button', { type: 'button', class: 'newer', disabled: !cursor.previous, onclick: () => load(cursor.previous, page - 1) }, '← Newer'),
      h('span', { class: 'page-number' }, `Page ${page}`),
      h('button', { type: 'button', class: 'older', disabled: !cursor.next, onclick: () => load(cursor.next, page + 1) }, 'Older →'));
  }
  function occurrenceRows(occurrence) {
    const statusCell = h('td', { 'data-label': 'Status', class: 'status' }, statusBadge(occurrence.status));
    const instanceCell = h('td', { 'data-label': 'Workflow instance', class: 'instance' }, occurrence.workflowInstanceID ?? '—');
    const attemptsCell = h('td', { 'data-label': 'Attempts' }, String(occurrence.attempts));
    const details = h('tr', { class: 'details-row', hidden: true }, h('td', { colspan: 6 }));
    const toggle = h('button', { type: 'button', class: 'open', 'aria-expanded': 'false' }, 'Details');
    toggle.addEventListener('click', () => {
      const opening = details.hidden;
      details.hidden = !opening;
      toggle.setAttribute('aria-expanded', String(opening));
      if (opening) {
        fill(details.firstChild, occurrenceDetails(trigger, occurrence, (now) => {
          Object.assign(occurrence, now);
          fill(statusCell, statusBadge(now.status));
          fill(instanceCell, now.workflowInstanceID ?? '—');
          fill(attemptsCell, String(now.attempts));
        }));
      }
    });
    const row = h('tr', { 'data-occurrence-id': occurrence.id },
      h('td', { 'data-label': 'Date' }, time(occurrence.date)),
      statusCell,
      h('td', { 'data-label': 'Event' }, occurrence.eventID),
      attemptsCell,
      instanceCell,
      h('td', {}, toggle));
    return [row, details];
  }
  const form = h('form', { class: 'filters', onsubmit: (event) => { event.preventDefault(); load(null, 1); } },
    h('div', { class: 'field' }, h('label', { for: 'occ-status' }, 'Status'), status),
    h('div', { class: 'field' }, h('label', { for: 'occ-since' }, 'Since'), since),
    h('div', { class: 'field' }, h('label', { for: 'occ-until' }, 'Until'), until),
    h('div', { class: 'field' }, h('label', { for: 'occ-page-size' }, 'Per page'), pageSize),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show')));
  load(null, 1);
  return h('section', { class: 'panel', 'aria-labelledby': 'occurrences-title' },
    h('h2', { id: 'occurrences-title' }, 'Occurrences'), form, body, pager);
}

function testPanel(trigger) {
  const event = h('textarea', { id: 'test-event', name: 'event', rows: 8, spellcheck: 'false' });
  const pick = h('select', { id: 'test-pick' }, h('option', { value: '' }, '—'));
  const result = h('div', { id: 'test-result' });
  let recent = [];
  pick.addEventListener('change', () => {
    const chosen = recent.find((occurrence) => occurrence.id === pick.value);
    if (chosen) event.value = JSON.stringify(chosen.event, null, 2);
  });
  const form = h('form', { id: 'test-form' },
    h('div', { class: 'field' }, h('label', { for: 'test-pick' }, 'Use the event of a recent occurrence'), pick),
    h('div', { class: 'field' }, h('label', { for: 'test-event' }, 'Event (a full envelope, or a bare payload)'), event),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Test')),
    result);
  form.addEventListener('submit', async (submitted) => {
    submitted.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(event.value);
    } catch (problem) {
      fill(result, errorBox(`The event is not JSON: ${problem.message}`));
      return;
    }
    try {
      const answer = await api('POST', `/v2/triggers/${encode(trigger.id)}/test`, parsed);
      fill(result, testResult(answer.data));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      fill(result, errorBox(error.plain));
    }
  });
  const panel = h('section', { class: 'panel', 'aria-labelledby': 'test-title' },
    h('h2', { id: 'test-title' }, 'Test against an event'), form);
  panel.offer = (occurrences) => {
    recent = occurrences;
    fill(pick, h('option', { value: '' }, '—'), occurrences.map((occurrence) =>
      h('option', { value: occurrence.id }, `${occurrence.date} · ${occurrence.eventID}`)));
  };
  return panel;
}

export function triggerPage(main, [triggerID]) {
  const title = h('h1', {}, 'Trigger');
  fill(main, h('p', {}, h('a', { href: '#/triggers' }, '← All triggers')), title, h('p', {}, 'Loading…'));
  api('GET', `/v2/triggers/${encode(triggerID)}`).then((answer) => {
    const trigger = answer.data;
    fill(title, `Trigger ${trigger.name ?? trigger.id}`);
    document.title = `${title.textContent} · trigger-daemon`;
    const tester = testPanel(trigger);
    fill(main, h('p', {}, h('a', { href: '#/triggers' }, '← All triggers')), title,
      h('div', { class: 'columns' }, definition(trigger), tester),
      occurrencesPanel(trigger, tester.offer));
  }, (error) => {
    if (!(error instanceof ApiError)) throw error;
    fill(main, h('p', {}, h('a', { href: '#/triggers' }, '← All triggers')), title, errorBox(error.plain));
  });
  return {};
}
