// The delivery tracker's view of a sent message (RFC 8621 7, deliveryStatus): per recipient delivered,
// deferred with the remote's reply, or failed.
import { useEffect, useState } from 'preact/hooks';
import * as mail from './mail.js';

// Per-recipient delivery of one submission, refreshed on push and every few seconds until final.
export function DeliveryStatus({ jmap, submissionId, subject, tick, submission: given }) {
  const [submission, setSubmission] = useState(given || null);
  useEffect(() => {
    if (given) return undefined;
    let stopped = false;
    let timer = null;
    const poll = async (n) => {
      const s = await mail.submissionById(jmap, submissionId).catch(() => null);
      if (stopped) return;
      if (s) setSubmission(s);
      if (!s || !mail.isFinal(s)) timer = setTimeout(() => poll(n + 1), n < 30 ? 2000 : 15000);
    };
    poll(0);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [submissionId, tick, given]);
  const statuses = submission ? Object.entries(submission.deliveryStatus || {}) : [];
  return (
    <div class="delivery" data-submission={submissionId}>
      {subject !== undefined && <p class="delivery-subject">{subject || '(no subject)'}</p>}
      {!submission && <p>Checking delivery…</p>}
      {submission && statuses.length === 0 && <p>The server reports no delivery status for this message.</p>}
      <ul>
        {statuses.map(([rcpt, status]) => {
          const { state, label } = mail.deliveryState(status);
          return (
            <li key={rcpt} class={`delivery-${state}`} data-recipient={rcpt} data-state={state}>
              <span class="rcpt">{rcpt}</span>: <strong class="state">{label}</strong>
              {status.smtpReply && state !== 'delivered' && <span class="reply"> — {status.smtpReply}</span>}
            </li>
          );
        })}
      </ul>
    </div>
  );
}

