// Building the page. Every value from the API goes in as text (a text node or an attribute),
// never as HTML.

/** An element with attributes, listeners (`onclick`...) and children (nodes or text). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the children of `element`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A JSON value, pretty-printed, as text. */
export function pretty(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

export function time(text) {
  if (!text) return '—';
  const moment = new Date(text);
  return h('time', { datetime: text, title: text }, moment.toLocaleString());
}

/** A status as a word with a symbol, readable without colour. */
export function statusBadge(status) {
  const symbols = { succeeded: '✓', failed: '✗', pending: '…', running: '…', cancelled: '■' };
  return h('span', { class: `badge badge-${status}` }, `${symbols[status] ?? '•'} ${status}`);
}

/** A labelled input: {label, name, type, value, hint, required, options (for a select)}. */
export function field(spec) {
  const id = `field-${spec.form}-${spec.name}`;
  const errorId = `${id}-error`;
  const hintId = spec.hint ? `${id}-hint` : null;
  const common = {
    id,
    name: spec.name,
    required: spec.required,
    'aria-describedby': [hintId, errorId].filter(Boolean).join(' '),
    placeholder: spec.placeholder,
  };
  let control;
  if (spec.options) {
    control = h('select', common, spec.options.map((option) =>
      h('option', { value: option, selected: option === spec.value }, option || '—')));
  } else if (spec.type === 'textarea') {
    control = h('textarea', { ...common, rows: spec.rows ?? 3, spellcheck: 'false' }, spec.value ?? '');
  } else {
    control = h('input', { ...common, type: spec.type ?? 'text', value: spec.value, min: spec.min });
  }
  return h('div', { class: 'field', 'data-field': spec.name },
    h('label', { for: id }, spec.label, spec.required ? h('span', { class: 'muted' }, ' (required)') : null),
    control,
    hintId ? h('p', { id: hintId, class: 'hint' }, spec.hint) : null,
    h('p', { id: errorId, class: 'field-error', role: 'alert', hidden: true }));
}

/** Show `message` under the field `name` of `form` (false when the form has no such field). */
export function showFieldError(form, name, message) {
  const holder = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
  if (!holder) return false;
  const error = holder.querySelector('.field-error');
  error.hidden = false;
  error.append(error.textContent ? h('br') : null, message);
  holder.querySelector('input, textarea, select').setAttribute('aria-invalid', 'true');
  return true;
}

export function clearErrors(form) {
  for (const error of form.querySelectorAll('.field-error, .form-error')) {
    error.hidden = true;
    error.replaceChildren();
  }
  for (const control of form.querySelectorAll('[aria-invalid]')) control.removeAttribute('aria-invalid');
}

/** An error paragraph for a whole form or panel. */
export function errorBox(message) {
  return h('p', { class: 'error', role: 'alert' }, message);
}
