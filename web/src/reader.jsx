// A conversation: each email's headers, its text or its sanitised HTML in a sandboxed frame, attachments to
// download, the actions, and for sent mail the per-recipient delivery status.
import { useEffect, useRef, useState } from 'preact/hooks';
import * as mail from './mail.js';
import { formatAddresses } from './compose.js';
import { FRAME_SANDBOX, hasRemoteContent, messageDocument } from './sanitize.js';
import { DeliveryStatus } from './delivery.jsx';

export function Reader({ jmap, thread, mailboxes, current, sentId, onClose, onReply, onReplyAll, onForward,
  onForwardAttachment, onDelete, onMove, onFlag, onSeen }) {
  const heading = useRef(null);
  const last = thread[thread.length - 1];
  useEffect(() => heading.current && heading.current.focus(), [last && last.id]);
  const flagged = thread.some((e) => (e.keywords || {}).$flagged);
  return (
    <article class="reader" aria-labelledby="reader-subject">
      <div class="toolbar" role="toolbar" aria-label="Message actions">
        <button type="button" class="back" onClick={onClose}>Back</button>
        <button type="button" onClick={onReply} aria-keyshortcuts="r">Reply</button>
        <button type="button" onClick={onReplyAll} aria-keyshortcuts="a">Reply all</button>
        <button type="button" onClick={onForward} aria-keyshortcuts="f">Forward</button>
        <button type="button" onClick={onForwardAttachment}>Forward as attachment</button>
        <button type="button" onClick={onFlag} aria-pressed={flagged} aria-keyshortcuts="s">{flagged ? 'Unflag' : 'Flag'}</button>
        <button type="button" onClick={onSeen} aria-keyshortcuts="u">Mark unread</button>
        <label for="move-to" class="visually-hidden">Move to</label>
        <select id="move-to" value="" onChange={(e) => { const v = e.currentTarget.value; e.currentTarget.value = ''; onMove(v); }}>
          <option value="">Move to…</option>
          {mailboxes.filter((m) => m.id !== current).map((m) => <option key={m.id} value={m.id}>{m.name}</option>)}
        </select>
        <button type="button" onClick={onDelete} aria-keyshortcuts="Delete">Delete</button>
      </div>
      <h2 id="reader-subject" tabIndex={-1} ref={heading}>{last.subject || '(no subject)'}</h2>
      {thread.map((email, i) => (
        <EmailView key={email.id} jmap={jmap} email={email} open={i === thread.length - 1 || !(email.keywords || {}).$seen}
          sent={sentId && (email.mailboxIds || {})[sentId]} />
      ))}
    </article>
  );
}

function EmailView({ jmap, email, open: initiallyOpen, sent }) {
  const [open, setOpen] = useState(initiallyOpen);
  const [remote, setRemote] = useState(false);
  const [submissions, setSubmissions] = useState(null);
  const html = mail.bodyHtml(email);
  const text = mail.bodyText(email, email.textBody);
  useEffect(() => {
    if (!sent) return;
    mail.submissionsOf(jmap, email.id).then(setSubmissions).catch(() => setSubmissions(null));
  }, [email.id, sent]);
  return (
    <section class="email" data-email-id={email.id}>
      <button type="button" class="email-head" aria-expanded={open} onClick={() => setOpen(!open)}>
        <span class="from">{formatAddresses(email.from) || '(no sender)'}</span>
        <span class="date">{new Date(email.sentAt || email.receivedAt).toLocaleString()}</span>
      </button>
      {open && (
        <div class="email-body">
          <dl class="headers">
            <dt>To</dt><dd>{formatAddresses(email.to) || '—'}</dd>
            {email.cc && email.cc.length > 0 && <><dt>Cc</dt><dd>{formatAddresses(email.cc)}</dd></>}
          </dl>
          {html !== null ? (
            <>
              {!remote && hasRemoteContent(html) && (
                <p class="remote-note">Remote images are blocked. <button type="button" onClick={() => setRemote(true)}>Load remote images</button></p>
              )}
              <MessageFrame html={html} allowRemote={remote} />
            </>
          ) : <pre class="text">{text}</pre>}
          {email.attachments && email.attachments.length > 0 && (
            <ul class="attachments" aria-label="Attachments">
              {email.attachments.map((a) => (
                <li key={a.partId || a.blobId}>
                  <a href={jmap.downloadUrl(a.blobId, a.name, a.type)} download={a.name || 'attachment'}>
                    {a.name || 'attachment'}
                  </a> <span class="size">({a.type}, {humanSize(a.size)})</span>
                </li>
              ))}
            </ul>
          )}
          {submissions && submissions.map((s) => <DeliveryStatus key={s.id} jmap={jmap} submissionId={s.id} submission={s} />)}
        </div>
      )}
    </section>
  );
}

// The sanitised HTML in a frame that runs no script and has an opaque origin; its height follows the content
// as far as the frame lets us measure (it is cross-origin, so a fixed, scrollable height).
function MessageFrame({ html, allowRemote }) {
  return (
    <iframe class="message-frame" title="Message content" sandbox={FRAME_SANDBOX}
      srcdoc={messageDocument(html, allowRemote)} referrerpolicy="no-referrer" />
  );
}

export function humanSize(n) {
  if (!n && n !== 0) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
