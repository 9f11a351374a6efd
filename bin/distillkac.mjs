#!/usr/bin/env node
// The `distillkac` command. Installed from npm it runs the built JavaScript (dist/). In a clone of the
// repository (src/ next to this file, tsx among the dev dependencies) it runs the TypeScript sources
// through tsx instead, so what runs is always the code being edited, with no build step and no stale
// dist/. DISTILLKAC_FROM=dist forces the built code (after `npm run build`).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Transform } from 'node:stream';
import { fileURLToPath } from 'node:url';

// Dawn's native code writes a warning to fd 2 for every adapter it opens on Mesa ("Warning:
// maxDynamic...PerPipelineLayout artificially reduced from N to 16 ..."): it comes from the adapter's
// own limits, before anything is requested, and JavaScript cannot silence a native write. So at a
// terminal the command runs as a child whose stderr passes through here without those lines (the
// child is told its stderr is a terminal, for the progress bar). Pipes and files get stderr unchanged.
if (process.stderr.isTTY && !process.env.DISTILLKAC_STDERR_TTY) {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'pipe'],
    env: { ...process.env, DISTILLKAC_STDERR_TTY: String(process.stderr.columns || 80) },
  });
  child.stderr.pipe(dawnWarningFilter()).pipe(process.stderr);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    process.exitCode = code ?? 1;
  });
} else {
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
}

/** Drops Dawn's limit warnings from a byte stream; everything else passes at once (progress bars too). */
function dawnWarningFilter() {
  const WARNING = /^Warning: maxDynamic\w+PerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?\n/gm;
  const PREFIX = 'Warning: maxDynamic';
  let held = '';
  return new (class extends Transform {
    _transform(chunk, _enc, done) {
      let text = (held + chunk.toString('utf8')).replace(WARNING, '');
      held = '';
      // keep back an unfinished last line that may still become one of Dawn's warnings
      const start = text.lastIndexOf('\n') + 1;
      const tail = text.slice(start);
      if (tail && (PREFIX.startsWith(tail) || (tail.startsWith(PREFIX) && !tail.includes('\r')))) {
        held = tail;
        text = text.slice(0, start);
      }
      done(null, text);
    }
    _flush(done) {
      done(null, held);
    }
  })();
}
