// The search box's words turned into an RFC 8621 4.4.1 FilterCondition for Email/query. Plain words go to
// `text` (the server matches From, To, Cc, Bcc, Subject and the body text); `field:word` narrows one field
// (from, to, cc, bcc, subject, body), `has:attachment` and `is:unread|read|flagged|unflagged` map to their
// conditions. Values with spaces are quoted ("from:"Jane Doe""). Several words of one kind are joined with
// spaces, which is what a person means by them and what one condition per field can hold.

const FIELDS = new Set(['from', 'to', 'cc', 'bcc', 'subject', 'body']);
const IS = {
  unread: ['notKeyword', '$seen'],
  read: ['hasKeyword', '$seen'],
  flagged: ['hasKeyword', '$flagged'],
  unflagged: ['notKeyword', '$flagged'],
};

// Splits on spaces outside double quotes; `field:"two words"` and `"two words"` each stay one token.
function tokens(query) {
  const out = [];
  const pattern = /(?:[^\s"]+:)?"[^"]*"?|\S+/g;
  for (const match of query.matchAll(pattern)) out.push(match[0]);
  return out;
}

const unquote = (value) => value.replace(/^"/, '').replace(/"$/, '');

// The filter for `query`, or null for an empty query. Unknown prefixes ("re:") are searched as text.
export function searchFilter(query) {
  const filter = {};
  const add = (key, value) => {
    if (!value) return;
    filter[key] = filter[key] ? `${filter[key]} ${value}` : value;
  };
  for (const token of tokens(String(query || ''))) {
    const colon = token.indexOf(':');
    const key = colon > 0 ? token.slice(0, colon).toLowerCase() : '';
    const value = colon > 0 ? unquote(token.slice(colon + 1)) : '';
    if (FIELDS.has(key)) {
      add(key, value);
    } else if (key === 'has' && value.toLowerCase() === 'attachment') {
      filter.hasAttachment = true;
    } else if (key === 'is' && IS[value.toLowerCase()]) {
      const [condition, keyword] = IS[value.toLowerCase()];
      filter[condition] = keyword;
    } else {
      add('text', unquote(token));
    }
  }
  return Object.keys(filter).length ? filter : null;
}
