import { defineConfig } from 'vite';

// Plain Vite with Preact's automatic JSX runtime: no plugin, nothing fetched at run time, and no inline
// script in index.html (the server's Content-Security-Policy allows scripts from the app's own files only).
export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
});
