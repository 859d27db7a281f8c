// The console's entry point: hash routes to pages, the bearer-token form, notices and the
// health strip. Every datum comes from the daemon's API (api.js).

import { hasToken, onUnauthorized, setToken } from './api.js';
import { backtestsPage } from './backtests.js';
import { fill, h } from './dom.js';
import { startHealth } from './health.js';
import { testPage } from './test.js';
import { triggerPage } from './trigger.js';
import { triggersPage } from './triggers.js';

const ROUTES = [
  [/^#\/triggers$/, 'triggers', triggersPage],
  [/^#\/trigger\/([^/]+)$/, 'triggers', triggerPage],
  [/^#\/test$/, 'test', testPage],
  [/^#\/backtests$/, 'backtests', backtestsPage],
];

const main = document.getElementById('main');
const notice = document.getElementById('notice');
const auth = document.getElementById('auth');
const authMessage = document.getElementById('auth-message');
const authForm = document.getElementById('auth-form');
let current = null;
let health = null;

function notify(message) {
  notice.hidden = false;
  fill(notice, message);
}

function askForToken(error) {
  auth.hidden = false;
  fill(authMessage, hasToken()
    ? `The daemon refused this token: ${error.plain}`
    : `The daemon asks for a bearer token: ${error.plain}`);
  if (!auth.contains(document.activeElement)) authForm.elements.token.focus();
}

authForm.addEventListener('submit', (submitted) => {
  submitted.preventDefault();
  setToken(authForm.elements.token.value.trim());
  authForm.reset();
  auth.hidden = true;
  health.refresh();
  render();
});

function render() {
  const hash = window.location.hash || '#/triggers';
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) {
    window.location.hash = '#/triggers';
    return;
  }
  const [pattern, page, show] = route;
  const params = pattern.exec(hash).slice(1).map(decodeURIComponent);
  current?.stop?.();
  notice.hidden = true;
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.page === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  fill(main);
  current = show(main, params, { notify });
  document.title = `${main.querySelector('h1')?.textContent ?? 'Console'} · trigger-daemon`;
}

onUnauthorized(askForToken);
health = startHealth(document.getElementById('health'));
window.addEventListener('hashchange', render);
render();
