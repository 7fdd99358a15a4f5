// A small JMAP client (RFC 8620 core, RFC 8621 mail, submission): the session resource, method calls with
// the webmail's cookie and CSRF token, upload, download links and EventSource push. Nothing else talks to
// the server except sign-in and sign-out (auth.js).

export const CORE = 'urn:ietf:params:jmap:core';
export const MAIL = 'urn:ietf:params:jmap:mail';
export const SUBMISSION = 'urn:ietf:params:jmap:submission';

export class SignedOut extends Error {}

export class MethodError extends Error {
  constructor(name, type, description) {
    super(`${name}: ${type}${description ? ` (${description})` : ''}`);
    this.type = type;
  }
}

// RFC 8620 2: the server refuses API requests past maxConcurrentRequests at once (3.6.1, a 400 "limit"
// problem, before any method runs). The page asks several things at once (a push refresh, a thread, an
// action), so its calls wait for a free slot here; one refused anyway (another tab of the same account, a
// download) is sent again after a short pause, which is safe since none of its methods ran. Uploads, which
// have a limit of their own, are sent again likewise.
const DEFAULT_CONCURRENT_REQUESTS = 4;  // RFC 8620's suggested minimum
const LIMIT_RETRIES = 8;
const LIMIT_PAUSE_MS = 100;  // doubled at each retry, so the last waits about 13 s

const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// Runs `send()` (a fetch, answering { response, body } with the parsed JSON body or null) and runs it again
// while the server refuses it for `limit` (maxConcurrentRequests or maxConcurrentUpload), at most
// LIMIT_RETRIES times; answers the last { response, body }.
async function sendAgainWhileBusy(limit, send) {
  for (let attempt = 0; ; attempt += 1) {
    const answer = await send();
    const { response, body } = answer;
    const busy = response.status === 400 && body && body.type === 'urn:ietf:params:jmap:error:limit' &&
      body.limit === limit;
    if (!busy || attempt === LIMIT_RETRIES) return answer;
    await pause(LIMIT_PAUSE_MS * 2 ** attempt);
  }
}

export class Jmap {
  constructor(csrfToken, onSignedOut) {
    this.csrfToken = csrfToken;
    this.onSignedOut = onSignedOut;
    this.session = null;
    this.accountId = null;
    this.running = 0;   // API requests in flight
    this.waiting = [];  // resolvers of calls waiting for a slot, first come first served
  }

  maxConcurrentRequests() {
    const core = this.session && this.session.capabilities && this.session.capabilities[CORE];
    const max = core && core.maxConcurrentRequests;
    return Number.isInteger(max) && max > 0 ? max : DEFAULT_CONCURRENT_REQUESTS;
  }

  async slot() {
    if (this.running < this.maxConcurrentRequests()) {
      this.running += 1;
      return;
    }
    await new Promise((resolve) => { this.waiting.push(resolve); });  // the slot is handed over by release()
  }

  release() {
    const next = this.waiting.shift();
    if (next) next();  // the slot passes on: `running` stays the same
    else this.running -= 1;
  }

  async connect() {
    const response = await fetch('/jmap/session', { credentials: 'same-origin' });
    if (response.status === 401) throw this.signedOut();
    if (!response.ok) throw new Error(`session resource: HTTP ${response.status}`);
    this.session = await response.json();
    this.accountId = this.session.primaryAccounts[MAIL];
    return this.session;
  }

  signedOut() {
    if (this.onSignedOut) this.onSignedOut();
    return new SignedOut('signed out');
  }

  using() {
    const using = [CORE, MAIL];
    if (this.session && this.session.capabilities[SUBMISSION]) using.push(SUBMISSION);
    return using;
  }

  // Sends method calls ([name, args, callId]); accountId is filled in. Returns the responses by call id, and
  // throws MethodError for an "error" response unless `tolerate` is true.
  async call(calls, { tolerate = false } = {}) {
    const methodCalls = calls.map(([name, args, id]) => [name, { accountId: this.accountId, ...args }, id]);
    const request = JSON.stringify({ using: this.using(), methodCalls });
    const { response, body } = await sendAgainWhileBusy('maxConcurrentRequests', async () => {
      await this.slot();
      try {
        const sent = await fetch(this.session.apiUrl, {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json', 'X-Magpie-CSRF': this.csrfToken },
          body: request,
        });
        return { response: sent, body: await sent.json().catch(() => null) };
      } finally {
        this.release();
      }
    });
    if (response.status === 401) throw this.signedOut();
    if (!response.ok || !body) {
      throw new Error(body && body.detail ? body.detail : `JMAP request failed: HTTP ${response.status}`);
    }
    const results = {};
    for (const [name, args, id] of body.methodResponses) {
      if (name === 'error' && !tolerate) throw new MethodError(id, args.type, args.description);
      // An implicit call (RFC 8621 7.5: onSuccessUpdateEmail's Email/set) answers under the same call id
      // after the method's own response; the first one is the method's.
      if (id in results) continue;
      results[id] = name === 'error' ? { error: args } : args;
    }
    return results;
  }

  async upload(file) {
    const url = this.session.uploadUrl.replace('{accountId}', encodeURIComponent(this.accountId));
    // Uploads have their own limit (maxConcurrentUpload); one refused for it (another tab's) is sent again.
    const { response, body } = await sendAgainWhileBusy('maxConcurrentUpload', async () => {
      const sent = await fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': file.type || 'application/octet-stream', 'X-Magpie-CSRF': this.csrfToken },
        body: file,
      });
      return { response: sent, body: await sent.json().catch(() => null) };
    });
    if (response.status === 401) throw this.signedOut();
    if (!response.ok || !body) throw new Error(`upload of ${file.name} failed: HTTP ${response.status}`);
    return body;
  }

  downloadUrl(blobId, name, type) {
    return this.session.downloadUrl
      .replace('{accountId}', encodeURIComponent(this.accountId))
      .replace('{blobId}', encodeURIComponent(blobId))
      .replace('{name}', encodeURIComponent(name || 'attachment'))
      .replace('{type}', encodeURIComponent(type || 'application/octet-stream'));
  }

  // RFC 8620 7.3: one stream for every type; `onChange` gets the StateChange's changed map for this account.
  listen(onChange) {
    const url = this.session.eventSourceUrl
      .replace('{types}', '*')
      .replace('{closeafter}', 'no')
      .replace('{ping}', '60');
    const source = new EventSource(url, { withCredentials: true });
    source.addEventListener('state', (event) => {
      try {
        const change = JSON.parse(event.data);
        const changed = change.changed && change.changed[this.accountId];
        if (changed) onChange(changed);
      } catch {
        /* a malformed event is ignored; the next one carries the full state */
      }
    });
    return source;
  }
}

// Sign-in and sign-out: the only calls outside JMAP. The session cookie is HttpOnly; the CSRF token the
// server returns lives in this page's memory only.
export async function currentSession() {
  const response = await fetch('/webmail/session', { credentials: 'same-origin' });
  if (!response.ok) return null;
  return response.json();
}

export async function signIn(username, password) {
  const response = await fetch('/webmail/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (response.ok) return response.json();
  const problem = await response.json().catch(() => ({}));
  if (response.status === 401) throw new Error('Wrong address or password.');
  throw new Error(problem.detail || `Sign-in failed (HTTP ${response.status}).`);
}

export async function signOut(csrfToken) {
  await fetch('/webmail/logout', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'X-Magpie-CSRF': csrfToken },
  });
}
