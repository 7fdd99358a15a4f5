// The webmail's screens: sign-in, then mailboxes, the thread list, the reader and compose. State lives here;
// JMAP is in jmap.js and mail.js, message HTML safety in sanitize.js, compose rules in compose.js.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Jmap, SignedOut, currentSession, signIn, signOut } from './jmap.js';
import * as mail from './mail.js';
import { ComposeError, draftForm, emailObject, emptyForm, forwardDraft, replyDraft } from './compose.js';
import { Reader } from './reader.jsx';
import { Compose } from './compose.jsx';
import { DeliveryStatus } from './delivery.jsx';

export function App() {
  const [auth, setAuth] = useState(undefined);  // undefined: checking; null: signed out
  useEffect(() => {
    currentSession().then(setAuth).catch(() => setAuth(null));
  }, []);
  if (auth === undefined) return <p class="loading" role="status">Loading…</p>;
  if (!auth) return <SignIn onSignedIn={setAuth} />;
  return <Mail auth={auth} onSignedOut={() => setAuth(null)} />;
}

function SignIn({ onSignedIn }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError('');
    try {
      onSignedIn(await signIn(String(form.get('username')).trim(), String(form.get('password'))));
    } catch (e) {
      setError(e.message);
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Magpie Mail</h1>
        <label for="username">Email address</label>
        <input id="username" name="username" type="email" autocomplete="username" required autofocus />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required />
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
    </main>
  );
}

const roleOf = (mailboxes, role) => (mailboxes.find((m) => m.role === role) || {}).id;

// Waits until the newest request of a kind (`latest.current`, a promise that shows its answer) has settled,
// following any newer one asked meanwhile; `mine` is the caller's own, already settled.
async function settleLatest(latest, mine) {
  let waited = mine;
  while (latest.current !== waited) {
    waited = latest.current;
    await waited.catch(() => null);
  }
}

function Mail({ auth, onSignedOut }) {
  const jmap = useMemo(() => new Jmap(auth.csrfToken, onSignedOut), [auth]);
  const [ready, setReady] = useState(false);
  const [fatal, setFatal] = useState('');
  const [mailboxes, setMailboxes] = useState([]);
  const [identity, setIdentity] = useState(null);
  const [current, setCurrent] = useState(null);  // mailbox id
  const [search, setSearch] = useState('');        // active search text
  const [page, setPage] = useState({ emails: [], total: 0, position: 0 });
  const [selected, setSelected] = useState(0);     // index in page.emails
  const [thread, setThread] = useState(null);      // emails of the open thread
  const [compose, setCompose] = useState(null);    // the compose form, or null
  const [notice, setNotice] = useState('');
  const [tracking, setTracking] = useState([]);    // submissions sent in this session
  const [help, setHelp] = useState(false);
  const searchRef = useRef(null);
  const listRef = useRef(null);
  const state = useRef({});
  state.current = { current, search, page, thread, selected };

  useEffect(() => {
    if (!notice) return undefined;
    const timer = setTimeout(() => setNotice(''), 8000);
    return () => clearTimeout(timer);
  }, [notice]);

  const fail = useCallback((e) => {
    if (!(e instanceof SignedOut)) setNotice(e.message || String(e));
  }, []);

  // Answers to the same question asked twice can come back in either order (JMAP calls are answered in
  // parallel): each kind below numbers what it asks, and only the latest one asked may change the screen.
  // A refresh whose answer was dropped so still returns only once the screen shows one asked after it
  // (settleLatest), so "the list that shows my change" is on screen when a caller's await ends (a move's
  // notice comes with the list without the moved rows, even when a push asked for the list again meanwhile).
  const mailboxesAsked = useRef(0);
  const mailboxesShown = useRef(Promise.resolve());
  const refreshMailboxes = useCallback(async () => {
    const asked = ++mailboxesAsked.current;
    const shown = mail.loadMailboxes(jmap).then((list) => {
      if (asked === mailboxesAsked.current) setMailboxes(list);
      return list;
    });
    mailboxesShown.current = shown;
    const list = await shown;
    await settleLatest(mailboxesShown, shown);
    return list;
  }, [jmap]);

  // Shows a page of the list, then adds the thread sizes to the same page once they come (a newer page in
  // the meantime keeps its own).
  const showPage = useCallback((next) => {
    setPage(next);
    mail.threadSizes(jmap, next.emails).then((sizes) => {
      if (!sizes.size) return;
      setPage((shown) => (shown.emails !== next.emails ? shown : {
        ...shown, emails: shown.emails.map((e) => ({ ...e, threadSize: sizes.get(e.threadId) || e.threadSize })),
      }));
    }).catch(fail);
  }, [jmap]);

  // A page of the list that comes back after a newer one was asked for is dropped (null): a slow answer for
  // the search or mailbox before never replaces the page of the one now on screen.
  const listing = useRef(0);
  const fetchPage = useCallback(async (query) => {
    const asked = ++listing.current;
    const next = await mail.listEmails(jmap, query);
    return asked === listing.current ? next : null;
  }, [jmap]);

  const listShown = useRef(Promise.resolve());
  const refreshList = useCallback(async (keepPosition = true) => {
    const { current: mailboxId, search: text, page: old } = state.current;
    const shown = fetchPage({ mailboxId: text ? null : mailboxId, text, position: keepPosition ? old.position : 0 })
      .then((next) => {
        if (!next) return null;
        showPage(next);
        setSelected((s) => Math.min(s, Math.max(0, next.emails.length - 1)));
        return next;
      });
    listShown.current = shown;
    const next = await shown;
    if (!next) await settleLatest(listShown, shown);
    return next;
  }, [jmap]);

  useEffect(() => {
    (async () => {
      try {
        await jmap.connect();
        // The identity is for sending: asked beside the mailboxes, it does not hold up the first page.
        const [list, identity] = await Promise.all([refreshMailboxes(), mail.loadIdentity(jmap, auth.username)]);
        setIdentity(identity);
        setCurrent(roleOf(list, 'inbox') || (list[0] && list[0].id));
        setReady(true);
      } catch (e) {
        if (!(e instanceof SignedOut)) setFatal(e.message);
      }
    })();
  }, [jmap]);

  // The first rows on screen, as a User Timing mark (bench/webmail_first_page.py reads it: navigation start
  // to the first page of the list, measured by the browser itself).
  useEffect(() => {
    if (page.emails.length && !performance.getEntriesByName('magpie:first-page').length) {
      performance.mark('magpie:first-page');
    }
  }, [page]);

  useEffect(() => {
    if (!ready || !current) return;
    closeThread();
    setSelected(0);
    refreshList(false).catch(fail);
  }, [ready, current, search]);

  // Push: the server's EventSource says which types changed; the screens reload what they show.
  useEffect(() => {
    if (!ready) return undefined;
    let timer = null;
    const source = jmap.listen(() => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        refreshMailboxes().catch(fail);
        refreshList().catch(fail);
        setTracking((t) => [...t]);
      }, 150);
    });
    return () => {
      clearTimeout(timer);
      source.close();
    };
  }, [ready, jmap]);

  // The thread pane likewise: a thread that comes back after another was opened, or after the pane was
  // closed, is neither shown nor marked read (its reader never saw it).
  const threadAsked = useRef(0);
  const closeThread = () => {
    threadAsked.current += 1;
    setThread(null);
  };
  const openThread = useCallback(async (email) => {
    const asked = ++threadAsked.current;
    try {
      const emails = await mail.loadThread(jmap, email);
      if (asked !== threadAsked.current) return;
      setThread(emails);
      const unread = emails.filter((e) => !(e.keywords || {}).$seen).map((e) => e.id);
      if (unread.length) {
        await mail.setKeyword(jmap, unread, '$seen', true);
        if (asked === threadAsked.current) {
          setThread(emails.map((e) => ({ ...e, keywords: { ...e.keywords, $seen: true } })));
        }
        refreshMailboxes().catch(fail);
        refreshList().catch(fail);
      }
    } catch (e) {
      fail(e);
    }
  }, [jmap]);

  const mailboxById = (id) => mailboxes.find((m) => m.id === id);
  const draftsId = roleOf(mailboxes, 'drafts');
  const sentId = roleOf(mailboxes, 'sent');
  const trashId = roleOf(mailboxes, 'trash');

  // The emails an action applies to: the open thread's emails in this mailbox (all of them in a search).
  const targets = () => {
    const emails = thread || (page.emails[selected] ? [page.emails[selected]] : []);
    const inHere = emails.filter((e) => search || !current || (e.mailboxIds || {})[current]);
    return inHere.length ? inHere : emails;
  };

  const afterChange = async (close) => {
    if (close) closeThread();
    await Promise.all([refreshMailboxes(), refreshList()]);
  };

  const act = (fn) => async (...args) => {
    try {
      await fn(...args);
    } catch (e) {
      fail(e);
    }
  };

  const moveTo = act(async (toId) => {
    const emails = targets();
    if (!emails.length || !toId) return;
    await mail.move(jmap, emails.map((e) => e.id), search ? null : current, toId);
    // The notice comes with the list that shows the move, never before it.
    await afterChange(true);
    setNotice(`Moved to ${(mailboxById(toId) || {}).name || 'mailbox'}.`);
  });

  const remove = act(async () => {
    const emails = targets();
    if (!emails.length) return;
    let done;
    if (current === trashId && !search) {
      await mail.destroy(jmap, emails.map((e) => e.id));
      done = 'Deleted for good.';
    } else if (trashId) {
      await mail.move(jmap, emails.map((e) => e.id), search ? null : current, trashId);
      done = 'Moved to Trash.';
    } else {
      throw new Error('This account has no Trash mailbox.');
    }
    await afterChange(true);
    setNotice(done);
  });

  const toggle = act(async (keyword) => {
    const emails = targets();
    if (!emails.length) return;
    const on = !emails.every((e) => (e.keywords || {})[keyword]);
    await mail.setKeyword(jmap, emails.map((e) => e.id), keyword, on);
    if (thread) {
      const ids = new Set(emails.map((e) => e.id));
      setThread(thread.map((e) => (ids.has(e.id) ? { ...e, keywords: { ...e.keywords, [keyword]: on ? true : undefined } } : e)));
    }
    if (keyword === '$seen') setNotice(on ? 'Marked as read.' : 'Marked as unread.');
    await afterChange(false);
  });

  const latest = () => (thread ? thread[thread.length - 1] : null);
  const textOf = (email) => mail.bodyText(email, email.textBody);
  const reply = (all) => {
    const email = latest();
    if (email) setCompose(replyDraft(email, textOf(email), auth.username, all));
  };
  const forward = (asAttachment) => {
    const email = latest();
    if (email) setCompose(forwardDraft(email, textOf(email), asAttachment));
  };

  const openEmail = (email) => {
    if ((email.keywords || {}).$draft && (email.mailboxIds || {})[draftsId]) {
      mail.loadThread(jmap, email).then((emails) => {
        const draft = emails.find((e) => e.id === email.id) || emails[emails.length - 1];
        setCompose(draftForm(draft, textOf(draft)));
      }).catch(fail);
      return;
    }
    openThread(email);
  };

  const buildEmail = (form) => {
    if (!identity) throw new ComposeError('Sending needs an identity (Identity/get) from the server.');
    const from = { name: identity.name || null, email: identity.email };
    return emailObject(form, from, draftsId ? { [draftsId]: true } : {});
  };

  const saveDraft = async (form) => {
    const { email } = buildEmail(form);
    const id = await mail.saveDraft(jmap, email, form.draftId);
    refreshMailboxes().catch(fail);
    if (current === draftsId) refreshList().catch(fail);
    return id;
  };

  const sendForm = async (form) => {
    const { email, recipients } = buildEmail(form);
    if (!recipients.length) throw new ComposeError('Add at least one recipient.');
    const sent = await mail.send(jmap, email, form.draftId, identity, draftsId, sentId);
    setTracking((t) => [{ id: sent.submissionId, emailId: sent.emailId, subject: form.subject, recipients }, ...t].slice(0, 5));
    setNotice('Sent.');
    setCompose(null);
    refreshMailboxes().catch(fail);
    refreshList().catch(fail);
  };

  // Keyboard shortcuts (shown with "?"): none fire while typing in a field.
  useEffect(() => {
    const onKey = (event) => {
      const target = event.target;
      const typing = target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA' || target.tagName === 'SELECT' || target.isContentEditable);
      if (event.key === 'Escape') {
        if (help) setHelp(false);
        else if (compose) return;
        else if (thread) closeThread();
        return;
      }
      if (typing || event.ctrlKey || event.metaKey || event.altKey || compose) return;
      const { page: p, selected: s } = state.current;
      const keys = {
        j: () => setSelected(Math.min(s + 1, p.emails.length - 1)),
        k: () => setSelected(Math.max(s - 1, 0)),
        o: () => p.emails[s] && openEmail(p.emails[s]),
        c: () => setCompose(emptyForm()),
        r: () => reply(false),
        a: () => reply(true),
        f: () => forward(false),
        '#': () => remove(),
        Delete: () => remove(),
        s: () => toggle('$flagged'),
        u: () => toggle('$seen'),
        '/': () => searchRef.current && searchRef.current.focus(),
        '?': () => setHelp(true),
      };
      const fn = keys[event.key];
      if (fn) {
        event.preventDefault();
        fn();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  useEffect(() => {
    const row = listRef.current && listRef.current.querySelector(`[data-index="${selected}"]`);
    if (row && !compose && document.activeElement && document.activeElement.closest && document.activeElement.closest('.list')) row.focus();
  }, [selected]);

  if (fatal) return <p class="error" role="alert">{fatal}</p>;
  if (!ready) return <p class="loading" role="status">Loading your mailboxes…</p>;

  const currentBox = mailboxById(current);
  const title = search ? `Search: ${search}` : currentBox ? currentBox.name : '';
  const onSearch = (event) => {
    event.preventDefault();
    setSearch(String(new FormData(event.currentTarget).get('q') || '').trim());
  };

  return (
    <div class={`shell${thread ? ' reading' : ''}`}>
      <header class="bar">
        <span class="brand">Magpie</span>
        <form class="search" role="search" onSubmit={onSearch}>
          <label for="q" class="visually-hidden">Search mail</label>
          <input id="q" name="q" type="search" placeholder="Search mail" ref={searchRef}
            title="Words match headers and body; from: to: cc: subject: body: is:unread has:attachment narrow it" />
          <button type="submit">Search</button>
          {search && <button type="button" onClick={() => { setSearch(''); searchRef.current.value = ''; }}>Clear</button>}
        </form>
        <button type="button" class="primary" onClick={() => setCompose(emptyForm())} aria-keyshortcuts="c">Compose</button>
        <span class="user" title={auth.username}>{auth.username}</span>
        <button type="button" onClick={async () => { await signOut(auth.csrfToken); onSignedOut(); }}>Sign out</button>
      </header>
      <nav class="mailboxes" aria-label="Mailboxes">
        <ul>
          {mailboxes.map((m) => (
            <li key={m.id}>
              <button type="button" class={m.id === current && !search ? 'current' : ''}
                aria-current={m.id === current && !search ? 'page' : undefined}
                data-mailbox={m.name} onClick={() => { setSearch(''); setCurrent(m.id); if (searchRef.current) searchRef.current.value = ''; }}>
                <span class="name">{m.name}</span>
                {m.unreadEmails > 0 && <span class="count" aria-label={`${m.unreadEmails} unread`}>{m.unreadEmails}</span>}
              </button>
            </li>
          ))}
        </ul>
      </nav>
      <section class="list" aria-label={`Messages in ${title}`}>
        <h2 class="list-title">{title} <span class="total">{page.total} {page.total === 1 ? 'conversation' : 'conversations'}</span></h2>
        {page.emails.length === 0 && <p class="empty">No messages.</p>}
        <ul ref={listRef}>
          {page.emails.map((e, i) => (
            <li key={e.id}>
              <button type="button" data-index={i} data-email-id={e.id}
                class={`row${(e.keywords || {}).$seen ? '' : ' unread'}${i === selected ? ' selected' : ''}`}
                aria-current={i === selected ? 'true' : undefined}
                onClick={() => { setSelected(i); openEmail(e); }}>
                <span class="from">{(e.from || []).map((a) => a.name || a.email).join(', ') || '(no sender)'}{e.threadSize > 1 && <span class="thread-size" aria-label={`${e.threadSize} messages`}> {e.threadSize}</span>}</span>
                <span class="subject">{(e.keywords || {}).$flagged && <span class="flag" aria-label="flagged">★ </span>}{e.subject || '(no subject)'}</span>
                <span class="preview">{e.preview}</span>
                <span class="date">{shortDate(e.receivedAt)}</span>
                {!(e.keywords || {}).$seen && <span class="visually-hidden">unread</span>}
              </button>
            </li>
          ))}
        </ul>
        {page.total > page.position + page.emails.length && (
          <button type="button" class="more" onClick={async () => {
            const next = await fetchPage({ mailboxId: search ? null : current, text: search, position: page.position + mail.PAGE }).catch(fail);
            if (next) { showPage(next); setSelected(0); }
          }}>Older</button>
        )}
        {page.position > 0 && (
          <button type="button" class="more" onClick={async () => {
            const next = await fetchPage({ mailboxId: search ? null : current, text: search, position: Math.max(0, page.position - mail.PAGE) }).catch(fail);
            if (next) { showPage(next); setSelected(0); }
          }}>Newer</button>
        )}
      </section>
      <section class="reader-pane" aria-label="Message">
        {thread ? (
          <Reader jmap={jmap} thread={thread} mailboxes={mailboxes} current={current} sentId={sentId}
            onClose={closeThread} onReply={() => reply(false)} onReplyAll={() => reply(true)}
            onForward={() => forward(false)} onForwardAttachment={() => forward(true)} onDelete={remove}
            onMove={moveTo} onFlag={() => toggle('$flagged')} onSeen={() => toggle('$seen')} />
        ) : <p class="empty">Select a conversation to read it.</p>}
      </section>
      {tracking.length > 0 && (
        <aside class="tracking" aria-label="Delivery of sent messages">
          <h2>Delivery</h2>
          {tracking.map((t) => <DeliveryStatus key={t.id} jmap={jmap} submissionId={t.id} subject={t.subject} tick={tracking} />)}
          <button type="button" onClick={() => setTracking([])}>Dismiss</button>
        </aside>
      )}
      {compose && (
        <Compose jmap={jmap} initial={compose} identity={identity} onSave={saveDraft} onSend={sendForm}
          onClose={() => setCompose(null)} onNotice={setNotice} />
      )}
      {notice && (
        <div class="notice" role="status" aria-live="polite">
          <span>{notice}</span> <button type="button" onClick={() => setNotice('')} aria-label="Dismiss notice">×</button>
        </div>
      )}
      {help && <Shortcuts onClose={() => setHelp(false)} />}
    </div>
  );
}

function Shortcuts({ onClose }) {
  const ref = useRef(null);
  useEffect(() => ref.current && ref.current.focus(), []);
  const rows = [['j / k', 'next / previous conversation'], ['o', 'open (or Enter on a row)'], ['c', 'compose'], ['r', 'reply'],
    ['a', 'reply to all'], ['f', 'forward'], ['s', 'flag'], ['u', 'mark read / unread'], ['# or Delete', 'delete'],
    ['/', 'search: words match headers and body; from: to: cc: subject: body: is:unread is:flagged has:attachment narrow it'],
    ['Esc', 'close'], ['?', 'this help']];
  return (
    <div class="dialog-backdrop">
      <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="shortcuts-title">
        <h2 id="shortcuts-title">Keyboard shortcuts</h2>
        <dl>{rows.map(([k, v]) => <><dt><kbd>{k}</kbd></dt><dd>{v}</dd></>)}</dl>
        <button type="button" ref={ref} onClick={onClose}>Close</button>
      </div>
    </div>
  );
}

function shortDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toLocaleDateString([], { month: 'short', day: 'numeric', year: d.getFullYear() === now.getFullYear() ? undefined : 'numeric' });
}
