#!/usr/bin/env node
// The slowest tests and test files of a vitest run, from its JSON report, so that the next slow test
// is seen when it is added:
//   npm test -- --reporter=default --reporter=json --outputFile.json=report.json
//   node scripts/slowest-tests.mjs report.json [count]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const [file, countArg = '10'] = process.argv.slice(2);
const count = Number(countArg);
if (!file || !Number.isInteger(count) || count < 1) {
  console.error('usage: node scripts/slowest-tests.mjs REPORT.json [COUNT]  (REPORT from vitest --reporter=json --outputFile.json=REPORT.json)');
  process.exit(2);
}
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  console.error(`slowest-tests: cannot read the vitest JSON report ${file}: ${e.message}`);
  process.exit(2);
}

const seconds = (ms) => `${(ms / 1000).toFixed(1).padStart(7)} s`;
const files = report.testResults ?? [];
const tests = files.flatMap((f) =>
  (f.assertionResults ?? []).map((t) => ({ file: relative(process.cwd(), f.name), name: t.fullName, ms: t.duration ?? 0 })),
);
tests.sort((a, b) => b.ms - a.ms);
console.log(`the ${Math.min(count, tests.length)} slowest tests:`);
for (const t of tests.slice(0, count)) console.log(`${seconds(t.ms)}  ${t.file} > ${t.name}`);

// a file's wall time includes its hooks (devices opened, models built), which tests do not show
const walls = files.map((f) => ({ file: relative(process.cwd(), f.name), ms: (f.endTime ?? 0) - (f.startTime ?? 0) }));
walls.sort((a, b) => b.ms - a.ms);
console.log(`the ${Math.min(count, walls.length)} slowest files (wall time, hooks included):`);
for (const f of walls.slice(0, count)) console.log(`${seconds(f.ms)}  ${f.file}`);
