// The JMAP client's request gate (node --test; run by tests/e2e/test_webmail.py): never more API requests at
// once than the session's maxConcurrentRequests (RFC 8620 2), and a request the server refused for that
// limit (RFC 8620 3.6.1, before any method ran) is sent again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Jmap, CORE, MAIL, MethodError } from '../src/jmap.js';

function session(maxConcurrentRequests) {
  const jmap = new Jmap('csrf', null);
  jmap.session = {
    apiUrl: '/jmap/api',
    capabilities: { [CORE]: maxConcurrentRequests === undefined ? {} : { maxConcurrentRequests }, [MAIL]: {} },
    primaryAccounts: { [MAIL]: 'a1' },
  };
  jmap.accountId = 'a1';
  return jmap;
}

const answer = (status, body) => ({ status, ok: status >= 200 && status < 300, json: async () => body });
const echo = (init) => {
  const { methodCalls } = JSON.parse(init.body);
  return answer(200, { methodResponses: methodCalls.map(([name, args, id]) => [name, { seen: args }, id]) });
};
const tick = () => new Promise((resolve) => { setTimeout(resolve, 1); });

// A fetch that answers every call a tick later and counts the most calls it had in flight at once.
function countingFetch(t) {
  const seen = { inFlight: 0, most: 0 };
  t.mock.method(globalThis, 'fetch', async (url, init) => {
    seen.inFlight += 1;
    seen.most = Math.max(seen.most, seen.inFlight);
    await tick();
    seen.inFlight -= 1;
    return echo(init);
  });
  return seen;
}

test('no more requests in flight than maxConcurrentRequests, and every call is answered', async (t) => {
  const seen = countingFetch(t);
  const jmap = session(2);
  const answers = await Promise.all(Array.from({ length: 9 }, (_, i) => jmap.call([['Mailbox/get', { n: i }, 'm']])));
  assert.equal(seen.most, 2);
  assert.deepEqual(answers.map((a) => a.m.seen.n), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(jmap.running, 0);
});

test('without the capability the gate holds four, RFC 8620\'s suggested minimum', async (t) => {
  const seen = countingFetch(t);
  const jmap = session(undefined);
  await Promise.all(Array.from({ length: 10 }, () => jmap.call([['Mailbox/get', {}, 'm']])));
  assert.equal(seen.most, 4);
});

test('a request refused for maxConcurrentRequests is sent again; other problems are not', async (t) => {
  const limit = { type: 'urn:ietf:params:jmap:error:limit', status: 400, limit: 'maxConcurrentRequests',
    detail: 'too many concurrent requests for this account' };
  let calls = 0;
  t.mock.method(globalThis, 'fetch', async (url, init) => {
    calls += 1;
    return calls === 1 ? answer(400, limit) : echo(init);
  });
  const jmap = session(4);
  const answered = await jmap.call([['Email/set', { update: { e1: { 'keywords/$seen': true } } }, 's']]);
  assert.equal(calls, 2);
  assert.deepEqual(answered.s.seen.update, { e1: { 'keywords/$seen': true } });
  assert.equal(jmap.running, 0);

  calls = 0;
  const tooLarge = { ...limit, limit: 'maxSizeRequest', detail: 'the request is larger than 10000000 octets' };
  t.mock.method(globalThis, 'fetch', async () => {
    calls += 1;
    return answer(400, tooLarge);
  });
  await assert.rejects(jmap.call([['Email/get', {}, 'g']]), /larger than/);
  assert.equal(calls, 1);
  assert.equal(jmap.running, 0);
});

test('a method error still throws once the gate lets the call through', async (t) => {
  t.mock.method(globalThis, 'fetch', async () => answer(200, {
    methodResponses: [['error', { type: 'invalidArguments', description: 'no such property' }, 'g']],
  }));
  await assert.rejects(session(1).call([['Email/get', {}, 'g']]), MethodError);
});

test('an upload refused for maxConcurrentUpload is sent again, and its blob comes back', async (t) => {
  const busy = { type: 'urn:ietf:params:jmap:error:limit', status: 400, limit: 'maxConcurrentUpload',
    detail: 'too many concurrent uploads for this account' };
  let calls = 0;
  t.mock.method(globalThis, 'fetch', async () => {
    calls += 1;
    return calls === 1 ? answer(400, busy) : answer(201, { accountId: 'a1', blobId: 'b1', type: 'text/plain', size: 5 });
  });
  const jmap = session(4);
  jmap.session.uploadUrl = '/jmap/upload/{accountId}/';
  const blob = await jmap.upload({ name: 'notes.txt', type: 'text/plain' });
  assert.equal(calls, 2);
  assert.equal(blob.blobId, 'b1');

  calls = 0;
  t.mock.method(globalThis, 'fetch', async () => {
    calls += 1;
    return answer(400, { ...busy, limit: 'maxSizeUpload', detail: 'too large' });
  });
  await assert.rejects(jmap.upload({ name: 'big.bin', type: '' }), /upload of big.bin failed: HTTP 400/);
  assert.equal(calls, 1);
});
