// The search box's words as RFC 8621 4.4.1 filter conditions (node --test; run by tests/e2e/test_webmail.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { searchFilter } from '../src/search.js';

test('plain words search the text, which covers headers and body', () => {
  assert.deepEqual(searchFilter('pangolin invoice'), { text: 'pangolin invoice' });
  assert.equal(searchFilter('   '), null);
  assert.equal(searchFilter(''), null);
});

test('field prefixes narrow the search to one field, body included', () => {
  assert.deepEqual(searchFilter('from:carol subject:lunch body:sandwiches'),
    { from: 'carol', subject: 'lunch', body: 'sandwiches' });
  assert.deepEqual(searchFilter('To:bob cc:dave bcc:eve'), { to: 'bob', cc: 'dave', bcc: 'eve' });
});

test('quoted values keep their spaces and words of one kind join', () => {
  assert.deepEqual(searchFilter('from:"Jane Doe" "annual report"'), { from: 'Jane Doe', text: 'annual report' });
  assert.deepEqual(searchFilter('body:red body:kite'), { body: 'red kite' });
});

test('flags and attachments map to keywords and hasAttachment; unknown prefixes are text', () => {
  assert.deepEqual(searchFilter('is:unread has:attachment'), { notKeyword: '$seen', hasAttachment: true });
  assert.deepEqual(searchFilter('is:flagged'), { hasKeyword: '$flagged' });
  assert.deepEqual(searchFilter('re:budget is:nonsense'), { text: 're:budget is:nonsense' });
});
