// A project of one's own that depends on the packed distillkac tarball, installed with no network:
// its package-lock.json takes each dependency's version and integrity from this repository's lockfile,
// so `npm ci --offline` finds every package in the npm cache that this repository's `npm ci` filled
// (a plain `npm install --offline` cannot: the cache holds tarballs, not the registry's package lists).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Write package.json and package-lock.json in `dir` for a project whose dependency is the tarball
 * (a path relative to `dir`) and whose dev dependencies are `devDeps` (names installed in the repo).
 */
export function writeConsumerProject(dir: string, repoRoot: string, tarball: string, tarballAbs: string, devDeps: string[] = []): void {
  const repoLock: Record<string, { version: string; dev?: boolean; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }> = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')).packages;
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
  const packages: Record<string, Record<string, unknown>> = {};
  const add = (name: string, dev: boolean): void => {
    const key = `node_modules/${name}`;
    if (packages[key]) return;
    const entry = repoLock[key];
    if (!entry) throw new Error(`${name} is not in ${repoRoot}/package-lock.json`);
    const copy = { ...entry };
    if (dev) copy.dev = true;
    else delete copy.dev;
    packages[key] = copy;
    for (const dep of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) if (repoLock[`node_modules/${dep}`]) add(dep, dev);
  };
  for (const name of Object.keys(pkg.dependencies)) add(name, false);
  const devVersions: Record<string, string> = {};
  for (const name of devDeps) {
    add(name, true);
    devVersions[name] = repoLock[`node_modules/${name}`].version;
  }
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarballAbs)).digest('base64')}`;
  const manifest = { name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies: { [pkg.name]: `file:${tarball}` }, devDependencies: devVersions };
  packages[`node_modules/${pkg.name}`] = { version: pkg.version, resolved: `file:${tarball}`, integrity, license: pkg.license, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines };
  const lock = { name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'consumer', version: '1.0.0', dependencies: manifest.dependencies, devDependencies: devVersions }, ...packages } };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock, null, 2));
}
