// The Test page: a trigger typed in a form (not saved) against a pasted event, with the
// explanation of what decided the answer.

import { api, ApiError, withQuery } from './api.js';
import { clearErrors, errorBox, field, fill, h } from './dom.js';
import { testResult } from './explain.js';
import { definitionFields, showValidation, triggerBody } from './triggers.js';

export function testPage(main) {
  const result = h('div', { id: 'unsaved-result' });
  const formError = h('p', { class: 'form-error error', role: 'alert', hidden: true });
  const pick = h('select', { id: 'unsaved-pick' }, h('option', { value: '' }, '—'));
  const form = h('form', { id: 'unsaved-form', class: 'grid-form', novalidate: true },
    definitionFields('unsaved'),
    h('div', { class: 'field' }, h('label', { for: 'unsaved-pick' }, 'Use the event of a recent occurrence (any trigger)'), pick),
    field({ form: 'unsaved', name: 'testEvent', label: 'Event (a full envelope, or a bare payload)', type: 'textarea', rows: 10, required: true }),
    formError,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Test')));
  form.addEventListener('submit', async (submitted) => {
    submitted.preventDefault();
    clearErrors(form);
    fill(result);
    let event;
    try {
      event = JSON.parse(form.elements.testEvent.value);
    } catch (problem) {
      formError.hidden = false;
      fill(formError, `The event is not JSON: ${problem.message}`);
      return;
    }
    try {
      const answer = await api('POST', '/v2/triggers/test', { trigger: triggerBody(form), event });
      fill(result, testResult(answer.data));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 400 && error.message.startsWith('invalid trigger')) showValidation(form, formError, error);
      else fill(result, errorBox(error.plain));
    }
  });
  // The newest occurrences' events, across triggers, to test against.
  api('GET', withQuery('/v2/occurrences', { pageSize: 20 })).then((answer) => {
    const recent = answer.cursor.data;
    pick.append(...recent.map((occurrence) => h('option', { value: occurrence.id }, `${occurrence.date} · ${occurrence.eventID}`)));
    pick.addEventListener('change', () => {
      const chosen = recent.find((occurrence) => occurrence.id === pick.value);
      if (chosen) form.elements.testEvent.value = JSON.stringify(chosen.event, null, 2);
    });
  }, (error) => {
    if (!(error instanceof ApiError)) throw error;
    fill(pick, h('option', { value: '' }, `— (${error.plain})`));
  });
  fill(main,
    h('h1', {}, 'Test a trigger'),
    h('p', {}, 'Nothing is saved or run. To test a saved trigger, open it from the Triggers page.'),
    h('div', { class: 'columns' }, h('section', { class: 'panel' }, form), h('section', { class: 'panel' }, h('h2', {}, 'Answer'), result)));
  return {};
}
