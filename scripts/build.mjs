// `npm run build`: compile src/ to dist/ with tsc (ESM .js, .d.ts, source maps), then make the emitted
// relative imports explicit (imports, re-exports and `declare module` augmentations: `./tensor` -> `./tensor.js`), as Node's ESM
// loader and `moduleResolution: node16` consumers need; the sources keep bundler-style specifiers.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });

const walk = (d) => readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : [join(d, f)]));
const specifier = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\bdeclare\s+module\s+)(['"])(\.{1,2}\/[^'"]*)\2/g;
let rewritten = 0;
for (const file of walk(dist).filter((f) => f.endsWith('.js') || f.endsWith('.d.ts'))) {
  const src = readFileSync(file, 'utf8');
  const out = src.replace(specifier, (all, pre, q, spec) => {
    if (/\.(js|json|mjs)$/.test(spec)) return all;
    const target = resolve(dirname(file), spec);
    const fixed = existsSync(`${target}.js`) ? `${spec}.js` : existsSync(join(target, 'index.js')) ? `${spec}/index.js` : null;
    if (!fixed) throw new Error(`${file}: cannot resolve the relative import '${spec}' in dist/`);
    rewritten++;
    return `${pre}${q}${fixed}${q}`;
  });
  if (out !== src) writeFileSync(file, out);
}
console.log(`dist/: ${rewritten} relative imports made explicit`);
