// A test answer (testTrigger, with its `explain` extension) drawn for people.

import { h } from './dom.js';

function valueText(explained) {
  if (explained.error) return `error: ${explained.error}`;
  const text = JSON.stringify(explained.value);
  // A value that is not a boolean says how the filter reads it (null, [] and "" are false).
  if (explained.truthy === undefined || typeof explained.value === 'boolean') return text;
  return `${text} (${explained.truthy ? 'true' : 'false'})`;
}

function check(label, part) {
  return h('tr', {},
    h('th', { scope: 'row' }, label),
    h('td', {}, part.expected ?? 'any'),
    h('td', {}, part.actual ?? '—'),
    h('td', {}, part.matches ? '✓ yes' : '✗ no'));
}

function filterSection(filter) {
  if (!filter) return h('p', {}, 'No filter: every event of the type matches.');
  const clauses = filter.clauses.length
    ? h('ol', { class: 'clauses' }, filter.clauses.map((clause) => h('li', {},
      h('code', {}, clause.expression), ' → ', valueText(clause))))
    : null;
  return h('div', {},
    h('p', {}, 'Filter ', h('code', {}, filter.result.expression), ' → ', valueText(filter.result)),
    filter.operator ? h('p', {}, `Top-level clauses joined by ${filter.operator}:`) : null,
    clauses);
}

function variablesSection(variables) {
  const names = Object.keys(variables);
  if (!names.length) return h('p', {}, 'No vars.');
  return h('table', { class: 'compact' },
    h('thead', {}, h('tr', {}, ['Var', 'Expression', 'Value'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, names.map((name) => h('tr', {},
      h('td', {}, name),
      h('td', {}, h('code', {}, variables[name].expression)),
      h('td', {}, valueText(variables[name]))))));
}

/** The answer of a test route: match or not, the decision, and what decided it. */
export function testResult(answer) {
  const matched = answer.filter.match;
  const explain = answer.explain;
  return h('section', { class: `test-result ${matched ? 'is-match' : 'is-no-match'}`, 'aria-live': 'polite' },
    h('h3', { class: 'verdict' }, matched ? '✓ Match' : '✗ No match'),
    explain ? h('p', { class: 'decision' }, explain.decision) : null,
    answer.filter.error ? h('p', { class: 'error' }, `Filter error: ${answer.filter.error}`) : null,
    explain ? h('div', { class: 'explain' },
      explain.eventChecked ? h('table', { class: 'compact' },
        h('thead', {}, h('tr', {}, ['Check', 'Expected', 'Actual', 'Matches'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, check('Event type', explain.type), check('Version', explain.version)))
        : h('p', {}, 'A bare payload: the type and version are not checked.'),
      filterSection(explain.filter),
      variablesSection(explain.variables)) : null);
}
