// Drives magpied with jmap-jam, a JMAP client from npm that nobody here wrote: list mailboxes, query and
// fetch bodies, upload an attachment, create a draft with it and submit it (moving it to Sent). Prints
// one JSON object with what it saw, for tests/e2e/test_jmap_client.py to check.
// Usage: node client.mjs SESSION_URL BEARER_TOKEN RECIPIENT
import JamClient from "jmap-jam";

const [sessionUrl, bearerToken, recipient] = process.argv.slice(2);
const jam = new JamClient({ sessionUrl, bearerToken });
const accountId = await jam.getPrimaryAccount();
const out = { accountId };

const [mailboxes] = await jam.api.Mailbox.get({ accountId });
const role = (r) => mailboxes.list.find((m) => m.role === r);
out.mailboxes = mailboxes.list.map((m) => [m.name, m.role]);

const upload = await jam.uploadBlob(accountId, new Blob([Buffer.from("attached by jmap-jam\n")], { type: "text/plain" }));
out.upload = { size: upload.size, type: upload.type };
const [identities] = await jam.api.Identity.get({ accountId });
const identity = identities.list[0];
out.identity = identity.email;

let found;
try {
  found = await jam.requestMany((t) => {
    const query = t.Email.query({
      accountId,
      filter: { inMailbox: role("inbox").id },
      sort: [{ property: "receivedAt", isAscending: false }],
      calculateTotal: true,
    });
    const emails = t.Email.get({
      accountId,
      ids: query.$ref("/ids"),
      properties: ["id", "subject", "from", "textBody", "bodyValues", "keywords"],
      fetchTextBodyValues: true,
    });
    return { query, emails };
  });
} catch (errors) {
  // A store without its Email implementation (the email helper's branch) says so; anything else fails.
  const unsupported = [errors].flat().some((e) => /not supported by this store backend/.test(e?.description ?? ""));
  if (!unsupported) throw errors;
  out.emailsUnsupported = true;
  console.log(JSON.stringify(out));
  process.exit(0);
}
const [{ query, emails }] = found;
out.inboxTotal = query.total;
out.inbox = emails.list.map((e) => ({
  subject: e.subject,
  from: e.from?.[0]?.email,
  text: e.textBody.map((p) => e.bodyValues[p.partId]?.value).join(""),
}));

// Issue 14: a text search with its snippets, and the inbox query's changes since the first query.
const [searched] = await jam.api.Email.query({ accountId, filter: { text: "noon" } });
const [snippets] = await jam.api.SearchSnippet.get({ accountId, filter: { text: "noon" }, emailIds: searched.ids });
out.search = { ids: searched.ids.length, preview: snippets.list[0]?.preview ?? null };
const [queryChanges] = await jam.api.Email.queryChanges({
  accountId,
  filter: { inMailbox: role("inbox").id },
  sort: [{ property: "receivedAt", isAscending: false }],
  sinceQueryState: query.queryState,
});
out.queryChanges = { added: queryChanges.added.length, removed: queryChanges.removed.length,
                     same: queryChanges.newQueryState === query.queryState };

const [created] = await jam.api.Email.set({
  accountId,
  create: {
    draft: {
      mailboxIds: { [role("drafts").id]: true },
      keywords: { $draft: true, $seen: true },
      from: [{ name: "Alice", email: identity.email }],
      to: [{ email: recipient }],
      subject: "Sent with jmap-jam",
      textBody: [{ partId: "t", type: "text/plain" }],
      bodyValues: { t: { value: "Hello from an npm JMAP client." } },
      attachments: [{ blobId: upload.blobId, type: "text/plain", name: "note.txt", disposition: "attachment" }],
    },
  },
});
if (!created.created) throw new Error(`draft not created: ${JSON.stringify(created.notCreated)}`);
const draftId = created.created.draft.id;

// One call (jam's request): its implicit Email/set answer shares the call id (RFC 8621 7.5), which
// requestMany would fold into one key.
const [submitted] = await jam.api.EmailSubmission.set({
  accountId,
  create: { send: { identityId: identity.id, emailId: draftId } },
  onSuccessUpdateEmail: {
    "#send": {
      [`mailboxIds/${role("drafts").id}`]: null,
      [`mailboxIds/${role("sent").id}`]: true,
      "keywords/$draft": null,
    },
  },
});
if (!submitted.created) throw new Error(`not submitted: ${JSON.stringify(submitted.notCreated)}`);
const [after] = await jam.api.Email.get({ accountId, ids: [draftId], properties: ["mailboxIds", "keywords", "attachments"] });
out.sent = {
  inSent: Boolean(after.list[0].mailboxIds[role("sent").id]),
  inDrafts: Boolean(after.list[0].mailboxIds[role("drafts").id]),
  keywords: Object.keys(after.list[0].keywords).sort(),
  attachments: after.list[0].attachments.map((a) => a.name),
};
console.log(JSON.stringify(out));
