// What compose needs apart from the screen: parsing and checking addresses, refusing header injection,
// building replies and forwards (RFC 5322 3.6.4 threading fields, the subject prefixes people expect), and
// the Email object of RFC 8621 4.6 that Email/set creates.

const ADDRESS = /^[^\s@<>(),;:"\\[\]]+@[^\s@<>(),;:"\\[\]]+\.[^\s@<>(),;:"\\[\]]+$/;
const CONTROL = /[\u0000-\u001f\u007f]/;

export class ComposeError extends Error {}

// "Name <a@b.c>, d@e.f" -> [{name, email}]. Throws ComposeError for anything that is not an address, and for
// control characters (CR and LF above all: a header injection) anywhere.
export function parseAddresses(text, field) {
  if (CONTROL.test(text)) throw new ComposeError(`${field}: line breaks and control characters are not allowed`);
  const out = [];
  for (const raw of splitAddressList(text)) {
    const item = raw.trim();
    if (!item) continue;
    const angle = item.match(/^(.*)<([^<>]*)>$/);
    let name = null;
    let email = item;
    if (angle) {
      name = angle[1].trim().replace(/^"(.*)"$/, '$1').trim() || null;
      email = angle[2].trim();
    }
    if (!ADDRESS.test(email)) throw new ComposeError(`${field}: "${item}" is not an email address`);
    out.push({ name, email });
  }
  return out;
}

function splitAddressList(text) {
  const parts = [];
  let current = '';
  let quoted = false;
  for (const c of text) {
    if (c === '"') quoted = !quoted;
    if ((c === ',' || c === ';') && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

export function checkSubject(subject) {
  if (CONTROL.test(subject)) throw new ComposeError('Subject: line breaks and control characters are not allowed');
  if (subject.length > 998) throw new ComposeError('Subject: too long');
  return subject;
}

export function formatAddress(a) {
  if (!a) return '';
  return a.name ? `${a.name.includes(',') ? `"${a.name}"` : a.name} <${a.email}>` : a.email;
}

export function formatAddresses(list) {
  return (list || []).map(formatAddress).join(', ');
}

function prefixed(subject, prefix) {
  const s = subject || '';
  return new RegExp(`^${prefix}:`, 'i').test(s.trim()) ? s : `${prefix}: ${s}`;
}

export function quote(text) {
  return (text || '').replace(/\r\n/g, '\n').split('\n').map((line) => `> ${line}`).join('\n');
}

function dateLine(email) {
  const when = email.sentAt || email.receivedAt;
  return when ? new Date(when).toUTCString() : '';
}

const same = (a, b) => a.toLowerCase() === b.toLowerCase();

// A reply (or reply to all) to `email`, whose text is `text`, from `me` (an address).
export function replyDraft(email, text, me, all) {
  const replyTo = email.replyTo && email.replyTo.length ? email.replyTo : email.from || [];
  let to = [...replyTo];
  let cc = [];
  if (all) {
    const seen = new Set([me.toLowerCase(), ...to.map((a) => a.email.toLowerCase())]);
    const add = (list, into) => {
      for (const a of list || []) {
        if (!seen.has(a.email.toLowerCase())) {
          seen.add(a.email.toLowerCase());
          into.push(a);
        }
      }
    };
    add(email.to, to);
    add(email.cc, cc);
  }
  if (!to.length || to.every((a) => same(a.email, me))) to = email.to || [];
  const references = [...(email.references || []), ...(email.messageId || [])];
  const sender = formatAddresses(email.from);
  return {
    to: formatAddresses(to),
    cc: formatAddresses(cc),
    bcc: '',
    subject: prefixed(email.subject, 'Re'),
    body: `\n\nOn ${dateLine(email)}, ${sender} wrote:\n${quote(text)}\n`,
    inReplyTo: email.messageId || null,
    references: references.length ? references : null,
    attachments: [],
  };
}

// A forward, inline (the text quoted, the attachments carried over) or as a message/rfc822 attachment.
export function forwardDraft(email, text, asAttachment) {
  const subject = prefixed(email.subject, 'Fwd');
  if (asAttachment) {
    return {
      to: '', cc: '', bcc: '', subject, body: '',
      inReplyTo: null, references: email.messageId || null,
      attachments: [{ blobId: email.blobId, type: 'message/rfc822', name: `${(email.subject || 'message').slice(0, 60)}.eml`, size: email.size }],
    };
  }
  const header = [
    '---------- Forwarded message ----------',
    `From: ${formatAddresses(email.from)}`,
    `Date: ${dateLine(email)}`,
    `Subject: ${email.subject || ''}`,
    `To: ${formatAddresses(email.to)}`,
  ];
  if (email.cc && email.cc.length) header.push(`Cc: ${formatAddresses(email.cc)}`);
  return {
    to: '', cc: '', bcc: '', subject,
    body: `\n\n${header.join('\n')}\n\n${text || ''}\n`,
    inReplyTo: null, references: email.messageId || null,
    attachments: (email.attachments || []).map((a) => ({ blobId: a.blobId, type: a.type, name: a.name, size: a.size })),
  };
}

// The Email/set create object (RFC 8621 4.6) of a draft form; throws ComposeError on bad input.
export function emailObject(form, from, mailboxIds) {
  const to = parseAddresses(form.to, 'To');
  const cc = parseAddresses(form.cc, 'Cc');
  const bcc = parseAddresses(form.bcc, 'Bcc');
  const subject = checkSubject(form.subject);
  const email = {
    mailboxIds,
    keywords: { $draft: true, $seen: true },
    from: [from],
    subject,
    bodyValues: { body: { value: form.body } },
    textBody: [{ partId: 'body', type: 'text/plain' }],
    attachments: form.attachments.map((a) => ({ blobId: a.blobId, type: a.type, name: a.name, disposition: 'attachment' })),
  };
  if (to.length) email.to = to;
  if (cc.length) email.cc = cc;
  if (bcc.length) email.bcc = bcc;
  if (form.inReplyTo) email.inReplyTo = form.inReplyTo;
  if (form.references) email.references = form.references;
  return { email, recipients: [...to, ...cc, ...bcc] };
}

// The form of a saved draft, to resume it.
export function draftForm(email, text) {
  return {
    to: formatAddresses(email.to),
    cc: formatAddresses(email.cc),
    bcc: formatAddresses(email.bcc),
    subject: email.subject || '',
    body: (text || '').replace(/\r?\n$/, ''),  // the line end the stored text part gained
    inReplyTo: email.inReplyTo || null,
    references: email.references || null,
    attachments: (email.attachments || []).map((a) => ({ blobId: a.blobId, type: a.type, name: a.name, size: a.size })),
    draftId: email.id,
  };
}

export function emptyForm() {
  return { to: '', cc: '', bcc: '', subject: '', body: '', inReplyTo: null, references: null, attachments: [], draftId: null };
}
