// The daemon's API, as the SDKs use it: same routes, same scopes, a bearer token when asked.

const TOKEN_KEY = 'trigger-daemon.token';

// The console is served at /ui/ and under /api/orchestration/ui/: the API is beside it.
export const API_BASE = window.location.pathname.replace(/\/ui(\/.*)?$/, '');

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** The message as a person reads it: what the daemon answered. */
  get plain() {
    if (this.status === 401) return `Not signed in (401): ${this.message}`;
    if (this.status === 403) return `Not allowed (403): ${this.message}`;
    if (this.status === 0) return this.message;
    return `${this.message} (HTTP ${this.status})`;
  }
}

const unauthorizedListeners = [];

/** `listener(error)` runs whenever the API answers 401. */
export function onUnauthorized(listener) {
  unauthorizedListeners.push(listener);
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function hasToken() {
  return Boolean(sessionStorage.getItem(TOKEN_KEY));
}

/** The JSON answer of `method path`, or an ApiError with the API's errorMessage. */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API_BASE + path, init);
  } catch (problem) {
    throw new ApiError(0, 'NETWORK', `The daemon did not answer: ${problem.message}`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const message = json?.errorMessage ?? (text || response.statusText);
    const error = new ApiError(response.status, json?.errorCode ?? '', message);
    if (response.status === 401) unauthorizedListeners.forEach((listener) => listener(error));
    throw error;
  }
  return json;
}

/** Every item of a cursor-paged list (following `next`), at most `maxPages` pages. */
export async function allPages(path, maxPages = 20) {
  const items = [];
  let answer = await api('GET', path);
  for (let page = 1; ; page += 1) {
    items.push(...answer.cursor.data);
    if (!answer.cursor.hasMore || !answer.cursor.next || page >= maxPages) return items;
    answer = await api('GET', withQuery(path.split('?')[0], { cursor: answer.cursor.next }));
  }
}

/** `path` with the non-empty values of `query` as its query string. */
export function withQuery(path, query) {
  const parameters = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') parameters.set(name, value);
  }
  const text = parameters.toString();
  return text ? `${path}?${text}` : path;
}

export function encode(id) {
  return encodeURIComponent(id);
}
