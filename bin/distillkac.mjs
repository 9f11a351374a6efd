#!/usr/bin/env node
// The `distillkac` command. Installed from npm it runs the built JavaScript (dist/). In a clone of the
// repository (src/ next to this file, tsx among the dev dependencies) it runs the TypeScript sources
// through tsx instead, so what runs is always the code being edited, with no build step and no stale
// dist/. DISTILLKAC_FROM=dist forces the built code (after `npm run build`).
import { existsSync } from 'node:fs';

const here = (p) => new URL(p, import.meta.url);
let entry = here('../dist/cli/main.js');
if (process.env.DISTILLKAC_FROM !== 'dist' && existsSync(here('../src/cli/main.ts'))) {
  try {
    const { register } = await import('tsx/esm/api');
    register();
    entry = here('../src/cli/main.ts');
  } catch {
    // a clone without its dev dependencies: the built code, if there is any
  }
}
if (!existsSync(entry)) {
  console.error('distillkac: dist/ is missing: run `npm run build` (or `npm install` in a clone, which brings tsx to run the sources)');
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
