// Message HTML never enters the app's document: it is sanitised with DOMPurify and shown in an iframe with
// `sandbox` (no allow-scripts, no allow-same-origin: an opaque origin that can run nothing and reach nothing
// of the app) through srcdoc, under a Content-Security-Policy of its own that blocks every remote load
// (images included) until the reader asks for remote images.
import DOMPurify from 'dompurify';

const purifier = DOMPurify();

purifier.addHook('afterSanitizeAttributes', (node) => {
  // Links open outside the frame, never in it, and tell the remote site nothing about us.
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

const FORBID_TAGS = ['form', 'input', 'button', 'textarea', 'select', 'option', 'script', 'iframe', 'frame',
  'frameset', 'object', 'embed', 'applet', 'base', 'meta', 'link', 'svg', 'math', 'video', 'audio', 'source',
  'track', 'portal', 'dialog'];
const FORBID_ATTR = ['action', 'formaction', 'srcset', 'ping', 'background', 'poster', 'autofocus'];

// The sanitised body, preceded by the message's own <style> elements (mail puts them in <head>).
export function sanitizeHtml(html) {
  const root = purifier.sanitize(html, {
    WHOLE_DOCUMENT: true,
    RETURN_DOM: true,
    FORBID_TAGS,
    FORBID_ATTR,
    ALLOW_DATA_ATTR: false,
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|cid:|data:image\/(?:png|gif|jpeg|webp);)/i,
  });
  const styles = [...root.querySelectorAll('head style')].map((style) => style.outerHTML).join('');
  const body = root.querySelector('body');
  return styles + (body ? body.innerHTML : '');
}

// True when the sanitised HTML would load something from the network (an image, a CSS url()).
export function hasRemoteContent(html) {
  return /\b(?:src|href)\s*=\s*["']?\s*https?:/i.test(html) || /url\(\s*["']?\s*https?:/i.test(html);
}

export function messageDocument(html, allowRemote) {
  const images = allowRemote ? 'data: http: https:' : 'data:';
  const policy = `default-src 'none'; img-src ${images}; style-src 'unsafe-inline'; font-src data:; ` +
    "form-action 'none'; base-uri 'none'";
  return '<!doctype html><html><head><meta charset="utf-8">' +
    `<meta http-equiv="Content-Security-Policy" content="${policy}">` +
    '<meta name="referrer" content="no-referrer">' +
    '<style>body{font:15px/1.5 system-ui,sans-serif;color:#1b1b1b;margin:0;padding:8px;overflow-wrap:anywhere}' +
    'img{max-width:100%;height:auto}</style></head><body>' + sanitizeHtml(html) + '</body></html>';
}

// The frame's sandbox: nothing runs; links may open a new top-level tab outside the sandbox.
export const FRAME_SANDBOX = 'allow-popups allow-popups-to-escape-sandbox';
