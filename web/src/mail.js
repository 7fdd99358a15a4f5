// The mail operations the screens use, each one JMAP request (RFC 8621): a first page of threads with the
// emails and thread sizes in one round trip, a thread with its bodies, flags, moves, deletes, drafts, sending
// with EmailSubmission and the per-recipient delivery status the server's queue reports.

import { searchFilter } from './search.js';

export const PAGE = 50;
const LIST_PROPERTIES = ['id', 'threadId', 'mailboxIds', 'keywords', 'from', 'to', 'subject', 'receivedAt',
  'preview', 'hasAttachment', 'size'];
const READ_PROPERTIES = ['id', 'blobId', 'threadId', 'mailboxIds', 'keywords', 'from', 'to', 'cc', 'bcc', 'replyTo',
  'sender', 'subject', 'sentAt', 'receivedAt', 'messageId', 'inReplyTo', 'references', 'size', 'preview',
  'hasAttachment', 'textBody', 'htmlBody', 'attachments', 'bodyValues'];

export async function loadMailboxes(jmap) {
  const r = await jmap.call([['Mailbox/get', {
    ids: null,
    properties: ['id', 'name', 'parentId', 'role', 'sortOrder', 'totalEmails', 'unreadEmails', 'totalThreads', 'unreadThreads'],
  }, 'm']]);
  const order = { inbox: 0, drafts: 1, sent: 2, archive: 3, junk: 4, trash: 5 };
  return r.m.list.sort((a, b) => {
    const ra = a.role in order ? order[a.role] : 10;
    const rb = b.role in order ? order[b.role] : 10;
    return ra - rb || (a.sortOrder || 0) - (b.sortOrder || 0) || a.name.localeCompare(b.name);
  });
}

export async function loadIdentity(jmap, username) {
  try {
    const r = await jmap.call([['Identity/get', { ids: null }, 'i']]);
    const list = r.i.list || [];
    return list.find((i) => i.email.toLowerCase() === username.toLowerCase()) || list[0] || null;
  } catch {
    return null;  // without Identity/get the app can still read; sending says why it cannot
  }
}

// One page of the list: Email/query and Email/get of the page, in one request. The thread sizes come after
// the rows are on screen (threadSizes): Thread/get of fifty threads is the slowest part of the request, and
// the rows do not wait for the small numbers beside them.
// A search (`text`, the search box's words: search.js) covers every mailbox.
export async function listEmails(jmap, { mailboxId, text, position = 0 }) {
  const filter = { ...(searchFilter(text) || {}) };
  if (mailboxId) filter.inMailbox = mailboxId;
  const r = await jmap.call([
    ['Email/query', {
      filter, sort: [{ property: 'receivedAt', isAscending: false }], collapseThreads: true,
      position, limit: PAGE, calculateTotal: true,
    }, 'q'],
    ['Email/get', { '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' }, properties: LIST_PROPERTIES }, 'g'],
  ], { tolerate: true });
  if (r.q.error) {
    const why = r.q.error.description ? ` (${r.q.error.description})` : '';
    throw new Error(`Email/query: ${r.q.error.type}${why}`);
  }
  if (r.g.error) throw new Error(`Email/get: ${r.g.error.type}`);
  const byId = new Map(r.g.list.map((e) => [e.id, e]));
  const emails = r.q.ids.map((id) => byId.get(id)).filter(Boolean).map((e) => ({ ...e, threadSize: 1 }));
  return { emails, total: r.q.total, position: r.q.position, queryState: r.q.queryState };
}

// How many emails each thread of `emails` holds (Thread/get), by thread id; empty when the server cannot say.
export async function threadSizes(jmap, emails) {
  const ids = [...new Set(emails.map((e) => e.threadId).filter(Boolean))];
  if (!ids.length) return new Map();
  const r = await jmap.call([['Thread/get', { ids }, 't']], { tolerate: true });
  if (!r.t || r.t.error || !r.t.list) return new Map();
  return new Map(r.t.list.map((t) => [t.id, t.emailIds.length]));
}

// The emails of a thread, oldest first, with their text and HTML bodies.
export async function loadThread(jmap, email) {
  const bodies = { properties: READ_PROPERTIES, fetchTextBodyValues: true, fetchHTMLBodyValues: true, maxBodyValueBytes: 1 << 20 };
  const r = await jmap.call([
    ['Thread/get', { ids: [email.threadId] }, 't'],
    ['Email/get', { '#ids': { resultOf: 't', name: 'Thread/get', path: '/list/*/emailIds' }, ...bodies }, 'g'],
  ], { tolerate: true });
  if (!r.t.error && !r.g.error && r.g.list.length) {
    return r.g.list.sort((a, b) => Date.parse(a.receivedAt) - Date.parse(b.receivedAt));
  }
  const one = await jmap.call([['Email/get', { ids: [email.id], ...bodies }, 'g']]);
  return one.g.list;
}

export function bodyText(email, parts) {
  return (parts || []).map((p) => (email.bodyValues && email.bodyValues[p.partId] ? email.bodyValues[p.partId].value : ''))
    .join('\n');
}

// The HTML of an email when it has a real HTML part (not just the text part again), else null.
export function bodyHtml(email) {
  const parts = email.htmlBody || [];
  if (!parts.some((p) => p.type === 'text/html')) return null;
  return parts.map((p) => {
    const value = email.bodyValues && email.bodyValues[p.partId] ? email.bodyValues[p.partId].value : '';
    if (p.type === 'text/html') return value;
    if (p.type === 'text/plain') return `<pre>${value.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' }[c]))}</pre>`;
    return '';
  }).join('');
}

export async function update(jmap, patches) {
  const r = await jmap.call([['Email/set', { update: patches }, 's']]);
  const failed = r.s.notUpdated && Object.values(r.s.notUpdated)[0];
  if (failed) throw new Error(`Email/set: ${failed.type}${failed.description ? ` (${failed.description})` : ''}`);
}

export function setKeyword(jmap, ids, keyword, on) {
  return update(jmap, Object.fromEntries(ids.map((id) => [id, { [`keywords/${keyword}`]: on ? true : null }])));
}

export function move(jmap, ids, fromId, toId) {
  return update(jmap, Object.fromEntries(ids.map((id) => [id, fromId
    ? { [`mailboxIds/${fromId}`]: null, [`mailboxIds/${toId}`]: true }
    : { mailboxIds: { [toId]: true } }])));
}

export async function destroy(jmap, ids) {
  const r = await jmap.call([['Email/set', { destroy: ids }, 's']]);
  const failed = r.s.notDestroyed && Object.values(r.s.notDestroyed)[0];
  if (failed) throw new Error(`Email/set destroy: ${failed.type}`);
}

function createdOrThrow(result, key) {
  if (result.created && result.created[key]) return result.created[key];
  const why = result.notCreated && result.notCreated[key];
  const properties = why && why.properties ? ` [${why.properties.join(', ')}]` : '';
  throw new Error(why ? `${why.type}${why.description ? `: ${why.description}` : ''}${properties}` : 'not created');
}

// Saves a draft (replacing the previous version) and returns its new id.
export async function saveDraft(jmap, email, previousId) {
  const args = { create: { draft: email } };
  if (previousId) args.destroy = [previousId];
  const r = await jmap.call([['Email/set', args, 's']]);
  return createdOrThrow(r.s, 'draft').id;
}

// Creates the email in Drafts and submits it; on success the server moves it to Sent (RFC 8621 7.5).
export async function send(jmap, email, previousId, identity, drafts, sent) {
  const args = { create: { draft: email } };
  if (previousId) args.destroy = [previousId];
  const onSuccess = { 'keywords/$draft': null };
  if (drafts) onSuccess[`mailboxIds/${drafts}`] = null;
  if (sent) onSuccess[`mailboxIds/${sent}`] = true;
  const r = await jmap.call([
    ['Email/set', args, 's'],
    ['EmailSubmission/set', {
      create: { send: { identityId: identity.id, emailId: '#draft' } },
      onSuccessUpdateEmail: { '#send': onSuccess },
    }, 'u'],
  ], { tolerate: true });
  if (r.s.error) throw new Error(`Email/set: ${r.s.error.type}`);
  const created = createdOrThrow(r.s, 'draft');
  if (r.u.error) throw new Error(`EmailSubmission/set: ${r.u.error.type}${r.u.error.description ? ` (${r.u.error.description})` : ''}`);
  const submission = createdOrThrow(r.u, 'send');
  return { emailId: created.id, submissionId: submission.id };
}

// The submissions of an email with their deliveryStatus (RFC 8621 7: per recipient smtpReply and delivered).
export async function submissionsOf(jmap, emailId) {
  const r = await jmap.call([
    ['EmailSubmission/query', { filter: { emailIds: [emailId] } }, 'q'],
    ['EmailSubmission/get', { '#ids': { resultOf: 'q', name: 'EmailSubmission/query', path: '/ids' } }, 'g'],
  ], { tolerate: true });
  if (r.q.error || r.g.error) return null;
  return r.g.list;
}

export async function submissionById(jmap, id) {
  const r = await jmap.call([['EmailSubmission/get', { ids: [id] }, 'g']], { tolerate: true });
  return r.g.error ? null : r.g.list[0] || null;
}

// RFC 8621 7: "queued" with a 4xx reply is a deferral; "yes" delivered; "no" failed.
export function deliveryState(status) {
  if (!status) return { state: 'unknown', label: 'Unknown' };
  if (status.delivered === 'yes') return { state: 'delivered', label: 'Delivered' };
  if (status.delivered === 'no') return { state: 'failed', label: 'Failed' };
  if (status.delivered === 'queued') {
    const reply = (status.smtpReply || '').trim();
    if (/^4\d\d/.test(reply) || (reply && !/^2\d\d/.test(reply))) return { state: 'deferred', label: 'Deferred' };
    return { state: 'queued', label: 'Queued' };
  }
  return { state: 'unknown', label: 'Unknown' };
}

export function isFinal(submission) {
  const statuses = Object.values(submission.deliveryStatus || {});
  return statuses.length > 0 && statuses.every((s) => s.delivered === 'yes' || s.delivered === 'no');
}
