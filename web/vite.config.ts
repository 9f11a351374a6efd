// The browser page: `npm run web:dev` serves it, `npm run web:build` writes the static site to web/dist.
// It bundles the browser-safe part of src (kernels, engine without runtime/dawn.ts, io, models), the
// same code as the CLI; a Node module reaching the bundle fails the build instead of being shimmed.
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));
const repo = fileURLToPath(new URL('..', import.meta.url));
const nodeOnly = new Set(['webgpu', ...builtinModules]);

/** Fail on any import of a Node built-in or of Dawn's Node binding. */
function noNodeModules(): Plugin {
  return {
    name: 'distillkac-no-node-modules',
    enforce: 'pre',
    resolveId(id, importer) {
      if (id.startsWith('node:') || nodeOnly.has(id)) {
        throw new Error(`${importer ?? '?'} imports the Node-only module '${id}', which cannot go into the browser page; move the pure part into a module of its own`);
      }
      return null;
    },
  };
}

export default defineConfig({
  root,
  base: './',
  logLevel: 'warn',
  plugins: [noNodeModules()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // the checkpoint is a file next to the page, never inlined
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 2000,
  },
  server: { fs: { allow: [repo] } },
});
