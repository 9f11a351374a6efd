// The README's engine example is examples/fit-mlp.ts verbatim, and it runs as written.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const root = join(__dirname, '..');

it('the README shows examples/fit-mlp.ts verbatim, and it trains as printed', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const example = readFileSync(join(root, 'examples', 'fit-mlp.ts'), 'utf8');
  expect(readme).toContain(example.trim());
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'examples', 'fit-mlp.ts')], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  const losses = [...r.stdout.matchAll(/step (\d+): loss ([\d.]+)/g)].map((m) => Number(m[2]));
  expect(losses).toHaveLength(3);
  expect(losses[2]).toBeLessThan(0.01);
});

it("README's layout table names every folder of src, and only those", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const layout = readme.slice(readme.indexOf('## Layout'), readme.indexOf('\n## ', readme.indexOf('## Layout') + 1));
  const listed = [...layout.matchAll(/^\| `src\/([\w-]+)` \|/gm)].map((m) => m[1]).sort();
  const tree = readdirSync(join(root, 'src'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  expect(listed).toEqual(tree);
  for (const doc of ['docs/method.md', 'docs/architecture.md']) expect(readme).toContain(`](${doc})`);
  expect(readme).not.toMatch(/\.\.\/shared/);
});
