// The compose rules and the delivery states without a browser (node --test; run by tests/e2e/test_webmail.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ComposeError, emailObject, emptyForm, forwardDraft, parseAddresses, replyDraft, checkSubject } from '../src/compose.js';
import { deliveryState, isFinal } from '../src/mail.js';

test('addresses parse with and without display names', () => {
  assert.deepEqual(parseAddresses('Bob <bob@example.test>, carol@elsewhere.test', 'To'), [
    { name: 'Bob', email: 'bob@example.test' },
    { name: null, email: 'carol@elsewhere.test' },
  ]);
  assert.deepEqual(parseAddresses('"Doe, Jane" <jane@example.test>', 'To'), [{ name: 'Doe, Jane', email: 'jane@example.test' }]);
  assert.deepEqual(parseAddresses('  ', 'Cc'), []);
});

test('line breaks and control characters in any header field are refused', () => {
  for (const bad of ['bob@example.test\r\nBcc: eve@example.test', 'bob@example.test\nBcc: eve@example.test',
    'Bob\r <bob@example.test>', 'bob@example.test\u0000']) {
    assert.throws(() => parseAddresses(bad, 'To'), ComposeError, JSON.stringify(bad));
  }
  assert.throws(() => checkSubject('Hi\r\nBcc: eve@example.test'), ComposeError);
  assert.throws(() => checkSubject('Hi\nthere'), ComposeError);
  assert.equal(checkSubject('Crêpes ✓'), 'Crêpes ✓');
  const form = { ...emptyForm(), to: 'bob@example.test', subject: 'ok\r\nBcc: eve@example.test' };
  assert.throws(() => emailObject(form, { email: 'alice@example.test' }, {}), ComposeError);
});

test('things that are not addresses are refused', () => {
  for (const bad of ['bob', 'bob@', '@example.test', 'bob@example', 'a b@example.test', '<>']) {
    assert.throws(() => parseAddresses(bad, 'To'), ComposeError, bad);
  }
});

const original = {
  id: 'e1', blobId: 'b1', subject: 'Plans', messageId: ['m1@example.test'], references: ['m0@example.test'],
  from: [{ name: 'Bob', email: 'bob@example.test' }], to: [{ name: null, email: 'alice@example.test' }, { name: 'Dan', email: 'dan@example.test' }],
  cc: [{ name: 'Carol', email: 'carol@elsewhere.test' }], sentAt: '2026-11-29T20:00:00Z', size: 120,
  attachments: [{ blobId: 'b2', type: 'text/csv', name: 'figures.csv', size: 20 }],
};

test('a reply goes to the sender, threads, quotes and prefixes Re: once', () => {
  const reply = replyDraft(original, 'noon?\nok', 'alice@example.test', false);
  assert.equal(reply.to, 'Bob <bob@example.test>');
  assert.equal(reply.cc, '');
  assert.equal(reply.subject, 'Re: Plans');
  assert.deepEqual(reply.inReplyTo, ['m1@example.test']);
  assert.deepEqual(reply.references, ['m0@example.test', 'm1@example.test']);
  assert.match(reply.body, /> noon\?\n> ok/);
  assert.equal(replyDraft({ ...original, subject: 'RE: Plans' }, '', 'alice@example.test', false).subject, 'RE: Plans');
});

test('reply to all keeps everyone but me', () => {
  const reply = replyDraft(original, '', 'alice@example.test', true);
  assert.equal(reply.to, 'Bob <bob@example.test>, Dan <dan@example.test>');
  assert.equal(reply.cc, 'Carol <carol@elsewhere.test>');
});

test('forwards: inline carries attachments, as attachment wraps the original', () => {
  const inline = forwardDraft(original, 'the text', false);
  assert.equal(inline.subject, 'Fwd: Plans');
  assert.match(inline.body, /Forwarded message[\s\S]*From: Bob <bob@example.test>[\s\S]*the text/);
  assert.deepEqual(inline.attachments.map((a) => a.blobId), ['b2']);
  const wrapped = forwardDraft(original, 'the text', true);
  assert.deepEqual(wrapped.attachments, [{ blobId: 'b1', type: 'message/rfc822', name: 'Plans.eml', size: 120 }]);
});

test('the Email/set object has the draft keyword, the body part and the attachments', () => {
  const form = { ...emptyForm(), to: 'bob@example.test', bcc: 'eve@example.test', subject: 'Hi', body: 'Hello',
    attachments: [{ blobId: 'b9', type: 'text/plain', name: 'n.txt', size: 3 }] };
  const { email, recipients } = emailObject(form, { name: 'Alice', email: 'alice@example.test' }, { d: true });
  assert.deepEqual(email.mailboxIds, { d: true });
  assert.deepEqual(email.keywords, { $draft: true, $seen: true });
  assert.deepEqual(email.bcc, [{ name: null, email: 'eve@example.test' }]);
  assert.equal(email.bodyValues.body.value, 'Hello');
  assert.deepEqual(email.attachments, [{ blobId: 'b9', type: 'text/plain', name: 'n.txt', disposition: 'attachment' }]);
  assert.equal(recipients.length, 2);
});

test('delivery states from deliveryStatus (RFC 8621 7)', () => {
  assert.equal(deliveryState({ delivered: 'yes', smtpReply: '250 2.0.0 OK' }).state, 'delivered');
  assert.equal(deliveryState({ delivered: 'no', smtpReply: '550 5.1.1 no such user' }).state, 'failed');
  assert.equal(deliveryState({ delivered: 'queued', smtpReply: '451 4.7.1 Greylisted' }).state, 'deferred');
  assert.equal(deliveryState({ delivered: 'queued', smtpReply: '' }).state, 'queued');
  assert.equal(deliveryState({ delivered: 'unknown', smtpReply: '250 ok' }).state, 'unknown');
  assert.ok(isFinal({ deliveryStatus: { a: { delivered: 'yes' }, b: { delivered: 'no' } } }));
  assert.ok(!isFinal({ deliveryStatus: { a: { delivered: 'queued' } } }));
});
