// The compose dialog: recipients, subject, text, attachments uploaded as they are chosen, save as draft and
// send. Every field is checked before anything goes to the server (compose.js).
import { useEffect, useRef, useState } from 'preact/hooks';
import { humanSize } from './reader.jsx';

export function Compose({ jmap, initial, identity, onSave, onSend, onClose, onNotice }) {
  const [form, setForm] = useState(initial);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const [uploading, setUploading] = useState(0);
  const first = useRef(null);
  const body = useRef(null);
  useEffect(() => {
    if (!form.to && first.current) first.current.focus();
    else if (body.current) {
      body.current.focus();
      body.current.setSelectionRange(0, 0);
    }
  }, []);
  const set = (key) => (event) => setForm({ ...form, [key]: event.currentTarget.value });

  const attach = async (event) => {
    const files = [...event.currentTarget.files];
    event.currentTarget.value = '';
    setUploading((n) => n + files.length);
    for (const file of files) {
      try {
        const blob = await jmap.upload(file);
        setForm((f) => ({ ...f, attachments: [...f.attachments, { blobId: blob.blobId, type: blob.type || file.type, name: file.name, size: blob.size }] }));
      } catch (e) {
        setError(e.message);
      } finally {
        setUploading((n) => n - 1);
      }
    }
  };

  const run = (label, fn) => async (event) => {
    if (event) event.preventDefault();
    setBusy(label);
    setError('');
    try {
      await fn();
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy('');
    }
  };
  const save = run('Saving…', async () => {
    const id = await onSave(form);
    setForm((f) => ({ ...f, draftId: id }));
    onNotice('Draft saved.');
  });
  const send = run('Sending…', () => onSend(form));

  const onKeyDown = (event) => {
    if (event.key === 'Escape') onClose();
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) send(event);
  };

  return (
    <div class="dialog-backdrop">
      <form class="dialog compose" role="dialog" aria-modal="true" aria-labelledby="compose-title" onSubmit={send} onKeyDown={onKeyDown}>
        <h2 id="compose-title">{form.draftId ? 'Draft' : 'New message'}</h2>
        <p class="from-line">From: {identity ? identity.email : '(no identity)'}</p>
        <label for="compose-to">To</label>
        <input id="compose-to" name="to" value={form.to} onInput={set('to')} ref={first} autocomplete="off" />
        <label for="compose-cc">Cc</label>
        <input id="compose-cc" name="cc" value={form.cc} onInput={set('cc')} autocomplete="off" />
        <label for="compose-bcc">Bcc</label>
        <input id="compose-bcc" name="bcc" value={form.bcc} onInput={set('bcc')} autocomplete="off" />
        <label for="compose-subject">Subject</label>
        <input id="compose-subject" name="subject" value={form.subject} onInput={set('subject')} />
        <label for="compose-body">Message</label>
        <textarea id="compose-body" name="body" rows={12} value={form.body} onInput={set('body')} ref={body} />
        <label for="compose-files">Attach files</label>
        <input id="compose-files" type="file" multiple onChange={attach} />
        {(form.attachments.length > 0 || uploading > 0) && (
          <ul class="attachments" aria-label="Attachments">
            {form.attachments.map((a, i) => (
              <li key={a.blobId + i} data-blob-id={a.blobId}>
                {a.name} <span class="size">({humanSize(a.size)})</span>
                <button type="button" aria-label={`Remove ${a.name}`} onClick={() => setForm({ ...form, attachments: form.attachments.filter((_, j) => j !== i) })}>Remove</button>
              </li>
            ))}
            {uploading > 0 && <li role="status">Uploading {uploading}…</li>}
          </ul>
        )}
        {error && <p class="error" role="alert">{error}</p>}
        <div class="actions">
          <button type="submit" class="primary" disabled={!!busy || uploading > 0}>Send</button>
          <button type="button" onClick={save} disabled={!!busy || uploading > 0}>Save draft</button>
          <button type="button" onClick={onClose}>Close</button>
          {busy && <span role="status">{busy}</span>}
        </div>
      </form>
    </div>
  );
}
