// `npm run bench [-- --quick] [--json FILE] [--md FILE] [--backend default|opengl|all]
//                [--engines ours,tfjs,jax-js] [--cases SUBSTR,...] [--tune-cache FILE]`
//
// Times our engine against TensorFlow.js (WebGPU backend) and jax-js (WebGPU) on the same adapter,
// for every adapter asked for (default: all that come up), and reports each case as a fraction of
// the adapter's measured FMA peak or copy bandwidth. Each adapter runs in its own child process
// (the peers are process-wide singletons bound to one navigator.gpu); the parent merges the reports.
//
// JSON (--json): one object per adapter,
//   { adapter: {vendor, architecture, description, backend, featureLevel}, peak: {fmaGflops, copyGBps},
//     results: [{ case, shape, engine, ms, samples, msMin, msMedian, msMax, gflops?, gbps?, fractionOfPeak?,
//                 imagesPerSec?, dispatches?, checkValues?, kernels?, error? }], ... }
//   ms is the fastest of the samples (msMin); msMedian and msMax give the spread.
// written as that object when one adapter was measured, else as an array of them.
import { fork } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { availableBackends } from '../src/engine/runtime/dawn';
import type { AdapterSummary, Backend, KernelProfile } from '../src/engine/runtime/gpu';
import { exportGemmChoices, importGemmChoices, isSoftwareAdapter, tuneGemms } from '../src/engine/autotune';
import { type BenchCase, type CaseRun, benchCases, checkAgrees } from './cases';
import { ENGINES, type EngineName, type Env, openEnv } from './engines';
import { type Peaks, measurePeaks } from './roofline';

export interface BenchOptions {
  /** fewer and smaller cases, fewer samples (samplingPlan) */
  quick?: boolean;
  /** write the JSON report here */
  json?: string;
  /** write a markdown table (with the command line) here */
  md?: string;
  /** 'default', 'opengl', 'vulkan', or 'all' (default: every backend that comes up) */
  backend?: string;
  engines?: EngineName[];
  /** only cases whose name or shape contains one of these */
  cases?: string[];
  /** load GEMM autotuner choices from, and save them to, this JSON file */
  tuneCache?: string;
  /** progress lines (default: stderr) */
  log?: (line: string) => void;
}

export interface BenchResult {
  case: string;
  shape: string;
  engine: EngineName;
  ms: number;
  gflops?: number;
  gbps?: number;
  /** gflops / peak.fmaGflops or gbps / peak.copyGBps */
  fractionOfPeak?: number;
  /** training steps: images per second */
  imagesPerSec?: number;
  /** iterations timed, and the spread of per-op times: `ms` is the fastest (msMin), then the median
   *  and the slowest */
  samples?: number;
  msMin?: number;
  msMedian?: number;
  msMax?: number;
  /** training steps, ours: kernel dispatches of one step */
  dispatches?: number;
  /** cases with a check: what `iter` returned in the two warm-up iterations (training steps: the
   *  loss of steps 1 and 2), compared with ours */
  checkValues?: number[];
  /** per-kernel GPU time of one iteration (ours only; ms null without timestamp queries) */
  kernels?: KernelProfile[];
  error?: string;
}

export interface AdapterReport {
  adapter: AdapterSummary;
  peak: { fmaGflops: number; copyGBps: number };
  results: BenchResult[];
  peakDetails: Peaks['details'];
  unavailable: Partial<Record<EngineName, string>>;
  gemmChoices: string;
  date: string;
  quick: boolean;
  cpus: number;
  /** 1-minute load average before and after: other processes on the machine skew the timings */
  loadavg: [number, number];
}

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');

// ---- one adapter (child process) ----------------------------------------------------------------

async function measureAdapter(backend: Backend, opts: BenchOptions): Promise<AdapterReport> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const load0 = loadavg()[0];
  const engines = opts.engines ?? ENGINES;
  const env = await openEnv(backend, engines);
  const { gpu } = env;
  log(`[${backend}] ${gpu.adapter.description} (${gpu.adapter.featureLevel}); peers: ${engines.filter((e) => e !== 'ours').map((e) => `${e} ${env.unavailable[e] ? `unavailable: ${env.unavailable[e]}` : 'ok'}`).join(', ')}`);
  if (opts.tuneCache && existsSync(opts.tuneCache)) {
    log(`[${backend}] loaded ${importGemmChoices(readFileSync(opts.tuneCache, 'utf8'))} tuned GEMM choices from ${opts.tuneCache}`);
  }
  log(`[${backend}] roofline microkernels`);
  const peaks = await measurePeaks(gpu, { quick: opts.quick, log });
  log(`[${backend}] peak ${peaks.fmaGflops.toFixed(1)} GFLOP/s FMA, ${peaks.copyGBps.toFixed(1)} GB/s copy`);

  let cases = benchCases(!!opts.quick, !isSoftwareAdapter(gpu));
  if (opts.cases?.length) cases = cases.filter((c) => opts.cases!.some((f) => `${c.case} ${c.shape}`.includes(f)));
  const results: BenchResult[] = [];
  for (const c of cases) results.push(...(await timeCaseGroup(env, c, engines, peaks, !!opts.quick, log)));
  const report: AdapterReport = {
    adapter: gpu.adapter,
    peak: { fmaGflops: peaks.fmaGflops, copyGBps: peaks.copyGBps },
    results,
    peakDetails: peaks.details,
    unavailable: env.unavailable,
    gemmChoices: exportGemmChoices(),
    date: new Date().toISOString(),
    quick: !!opts.quick,
    cpus: cpus().length,
    loadavg: [load0, loadavg()[0]],
  };
  if (opts.tuneCache) writeFileSync(opts.tuneCache, report.gemmChoices);
  return report;
}

/** Median of a list (the middle value, or the mean of the middle two). */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** How long each case is sampled: every engine gets at least `minRounds` samples and the rounds go on
 *  until `minMs` have passed; past `capMs`, three rounds are enough (slow training steps). */
export function samplingPlan(quick: boolean): { minRounds: number; minMs: number; capMs: number } {
  return quick ? { minRounds: 5, minMs: 1500, capMs: 30_000 } : { minRounds: 7, minMs: 4000, capMs: 90_000 };
}

/**
 * Time one case on every engine. Engines are interleaved: each round times one iteration of every
 * engine in turn, so background load on a shared machine falls on all engines alike. The reported
 * time is the fastest sample (other processes only ever add time; the fastest is the figure that
 * repeats from run to run on a shared machine), with the median and the slowest as its spread;
 * per op: iteration time / chain.
 */
async function timeCaseGroup(env: Env, c: BenchCase, engines: EngineName[], peaks: Peaks, quick: boolean, log: (s: string) => void): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const runs = new Map<EngineName, CaseRun>();
  const warm = new Map<EngineName, number[]>();
  const fail = (engine: EngineName, e: unknown) => {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    log(`  ${c.case} ${c.shape} ${engine}: FAILED ${msg}`);
    results.push({ case: c.case, shape: c.shape, engine, ms: NaN, error: msg, ...(warm.has(engine) ? { checkValues: warm.get(engine) } : {}) });
  };
  try {
    for (const engine of engines) {
      const make = c.impl[engine];
      if (!make) continue;
      if ((engine === 'tfjs' && !env.tf) || (engine === 'jax-js' && !env.jax)) {
        fail(engine, env.unavailable[engine] ?? 'not loaded');
        continue;
      }
      try {
        const run = await make(env);
        runs.set(engine, run);
        // warm-up, two untimed iterations for every engine: the first compiles pipelines (for ours it
        // also queues GEMM shape classes for the autotuner, run in between); the second runs with
        // the pipelines (and tuned kernels) in place and the engine's buffer pools filled
        const t0 = performance.now();
        const first = await run.iter();
        if (engine === 'ours') {
          const tuned = await tuneGemms(env.gpu, { budgetMs: quick ? 30_000 : 120_000 });
          for (const t of tuned) if (t.timings.length > 1) log(`  tuned ${t.name}: ${t.chosen} (${t.timings.map((x) => `${x.variant} ${x.ms.toFixed(2)}`).join(', ')} ms)`);
        }
        warm.set(engine, [first, await run.iter()]);
        if (c.images) log(`  ${c.case} ${c.shape} ${engine}: warmed up in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      } catch (e) {
        runs.delete(engine);
        fail(engine, e);
      }
    }
    if (c.check) {
      const ours = warm.get('ours');
      for (const [engine, values] of warm) {
        if (engine === 'ours') continue;
        if (!ours) {
          log(`  ${c.case} ${c.shape} ${engine}: ${c.check.what} not checked (ours did not run)`);
        } else if (!checkAgrees(ours, values, c.check.rtol)) {
          runs.get(engine)?.dispose();
          runs.delete(engine);
          fail(engine, new Error(`${c.check.what} of the first steps (${values.join(', ')}) disagrees with ours (${ours.join(', ')}) beyond rtol ${c.check.rtol}: not the same computation`));
        } else {
          log(`  ${c.case} ${c.shape} ${engine}: ${c.check.what} agrees with ours (${values.map((v) => v.toPrecision(7)).join(', ')} vs ${ours.map((v) => v.toPrecision(7)).join(', ')})`);
        }
      }
    }
    const { minRounds, minMs, capMs } = samplingPlan(quick);
    const samples = new Map<EngineName, number[]>([...runs.keys()].map((e) => [e, []]));
    const start = performance.now();
    for (let round = 0; runs.size > 0; round++) {
      const elapsed = performance.now() - start;
      if (round >= minRounds && elapsed >= minMs) break;
      if (round >= 3 && elapsed >= capMs) break;
      const bench = new Bench({ time: 0, iterations: 1, warmup: false, throws: true, retainSamples: true });
      for (const [engine, run] of runs) bench.add(engine, () => run.iter(), { async: true });
      try {
        await bench.run();
      } catch (e) {
        // one engine failing mid-run: drop it, keep the others
        for (const task of bench.tasks) {
          const r = task.result as { error?: Error };
          if (r.error) {
            fail(task.name as EngineName, r.error);
            runs.get(task.name as EngineName)?.dispose();
            runs.delete(task.name as EngineName);
            samples.delete(task.name as EngineName);
          }
        }
        if (!bench.tasks.some((t) => (t.result as { error?: Error }).error)) throw e;
        continue;
      }
      for (const task of bench.tasks) {
        const lat = (task.result as { latency?: { samples?: number[] } }).latency;
        samples.get(task.name as EngineName)?.push(...(lat?.samples ?? []));
      }
    }
    for (const [engine, xs] of samples) {
      if (xs.length === 0) continue;
      const ms = Math.min(...xs) / c.chain;
      const out: BenchResult = { case: c.case, shape: c.shape, engine, ms, samples: xs.length, msMin: ms, msMedian: median(xs) / c.chain, msMax: Math.max(...xs) / c.chain };
      if (c.check) out.checkValues = warm.get(engine);
      if (c.flops) {
        out.gflops = c.flops / ms / 1e6;
        out.fractionOfPeak = out.gflops / peaks.fmaGflops;
      }
      if (c.bytes) {
        out.gbps = c.bytes / ms / 1e6;
        out.fractionOfPeak = out.gbps / peaks.copyGBps;
      }
      if (c.images) out.imagesPerSec = c.images / (ms / 1000);
      if (engine === 'ours') {
        env.gpu.startProfiling();
        await runs.get(engine)!.iter();
        out.kernels = await env.gpu.readProfile();
        env.gpu.stopProfiling();
        if (c.images) out.dispatches = out.kernels.reduce((a, k) => a + k.dispatches, 0);
      }
      log(
        `  ${c.case} ${c.shape} ${engine}: ${ms.toFixed(2)} ms${out.gflops ? `, ${out.gflops.toFixed(1)} GFLOP/s` : ''}${out.gbps ? `, ${out.gbps.toFixed(1)} GB/s` : ''}${out.imagesPerSec ? `, ${out.imagesPerSec.toFixed(1)} images/s` : ''}` +
          `${out.fractionOfPeak !== undefined ? ` (${(100 * out.fractionOfPeak).toFixed(0)}% of peak)` : ''}${out.dispatches ? `, ${out.dispatches} dispatches per step` : ''}` +
          ` [fastest of ${xs.length}; median ${out.msMedian!.toFixed(2)}, slowest ${out.msMax!.toFixed(2)} ms]`,
      );
      results.push(out);
    }
  } finally {
    for (const run of runs.values()) {
      try {
        run.dispose();
      } catch {
        // a failed engine may leave nothing to dispose
      }
    }
  }
  const order = (e: EngineName) => ENGINES.indexOf(e);
  return results.sort((a, b) => order(a.engine) - order(b.engine));
}

// ---- reporting -----------------------------------------------------------------------------------

const fmt = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

/** Markdown tables, one per adapter: per case, each engine's time and rate, ours as % of peak, speedups. */
export function markdownReport(reports: AdapterReport[], command: string): string {
  const lines: string[] = [`Command: \`${command}\``, ''];
  for (const r of reports) {
    const a = r.adapter;
    lines.push(
      `### ${a.backend} backend: ${a.description || a.vendor} (${a.featureLevel})`,
      '',
      `Measured ${r.date}, ${r.cpus} CPUs, 1-min load average ${r.loadavg[0].toFixed(1)} before / ${r.loadavg[1].toFixed(1)} after. ` +
        `Peak: **${r.peak.fmaGflops.toFixed(1)} GFLOP/s** FMA, **${r.peak.copyGBps.toFixed(1)} GB/s** copy (microkernels).` +
        (Object.keys(r.unavailable).length ? ` Unavailable: ${Object.entries(r.unavailable).map(([k, v]) => `${k} (${v})`).join(', ')}.` : ''),
      '',
      'Times are the fastest of the samples (count in brackets); ours spread gives the median and the slowest.',
      '',
      '| case | shape | ours ms | tfjs ms | jax-js ms | ours rate | tfjs rate | jax-js rate | ours % of peak | ours / best peer | ours spread: median, slowest ms |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    const keys = [...new Set(r.results.map((x) => `${x.case}\u0000${x.shape}`))];
    for (const key of keys) {
      const [c, shape] = key.split('\u0000');
      const by = (e: EngineName) => r.results.find((x) => x.case === c && x.shape === shape && x.engine === e);
      const ours = by('ours');
      const peers = (['tfjs', 'jax-js'] as EngineName[]).map(by);
      const rate = (x?: BenchResult) =>
        x?.imagesPerSec !== undefined ? `${fmt(x.imagesPerSec)} img/s` : x?.gflops !== undefined ? `${fmt(x.gflops)} GFLOP/s` : x?.gbps !== undefined ? `${fmt(x.gbps)} GB/s` : x?.error ? 'failed' : '-';
      const time = (x?: BenchResult) => (x && Number.isFinite(x.ms) ? `${fmt(x.ms, 2)}${x.samples ? ` [${x.samples}]` : ''}` : '-');
      const bestPeer = Math.min(...peers.map((p) => (p && Number.isFinite(p.ms) ? p.ms : Infinity)));
      const speedup = ours && Number.isFinite(ours.ms) && Number.isFinite(bestPeer) ? `${(bestPeer / ours.ms).toFixed(2)}x` : '-';
      lines.push(
        `| ${c} | ${shape} | ${time(ours)} | ${time(peers[0])} | ${time(peers[1])} | ${rate(ours)} | ${rate(peers[0])} | ${rate(peers[1])} | ${ours?.fractionOfPeak !== undefined ? `${fmt(100 * ours.fractionOfPeak, 0)}%` : '-'} | ${speedup} | ${ours?.msMedian !== undefined ? `${fmt(ours.msMedian, 2)}, ${fmt(ours.msMax, 2)}` : '-'} |`,
      );
    }
    for (const x of r.results.filter((y) => y.engine === 'ours' && y.imagesPerSec && y.kernels)) {
      const peers = r.results.filter((y) => y.case === x.case && y.shape === x.shape && y.engine !== 'ours');
      const vs = peers.map((p) => (p.imagesPerSec ? `${p.engine} ${p.imagesPerSec.toFixed(1)} images/s (ours ${(x.imagesPerSec! / p.imagesPerSec).toFixed(2)}x)` : `${p.engine} ${p.error ? `failed: ${p.error}` : '-'}`));
      const losses = [x, ...peers].filter((p) => p.checkValues).map((p) => `${p.engine} ${p.checkValues!.map((v) => v.toPrecision(7)).join(', ')}`);
      lines.push(
        '',
        `**${x.case}, ${x.shape}: ${x.imagesPerSec!.toFixed(1)} images/s** (${x.ms.toFixed(1)} ms per step, ${x.dispatches ?? '-'} dispatches per step)${vs.length ? `; ${vs.join('; ')}` : ''}.` +
          (losses.length ? ` Loss of steps 1 and 2: ${losses.join('; ')}.` : ''),
        '',
        `GPU time per kernel kind over one of our steps${x.kernels!.every((k) => k.ms === null) ? ' (no timestamp queries on this adapter: dispatch counts only)' : ''}:`,
        '',
      );
      lines.push('| kernel | dispatches | GPU ms | share |', '| --- | ---: | ---: | ---: |');
      const kinds = new Map<string, { n: number; ms: number }>();
      for (const k of x.kernels!) {
        const kind = k.name.split(/[ [(]/)[0];
        const e = kinds.get(kind) ?? { n: 0, ms: 0 };
        e.n += k.dispatches;
        e.ms += k.ms ?? 0;
        kinds.set(kind, e);
      }
      const total = [...kinds.values()].reduce((a, e) => a + e.ms, 0);
      const rows = [...kinds].sort((a, b) => b[1].ms - a[1].ms || b[1].n - a[1].n);
      for (const [kind, e] of rows.slice(0, 15)) lines.push(`| ${kind} | ${e.n} | ${total > 0 ? e.ms.toFixed(2) : '-'} | ${total > 0 ? `${((100 * e.ms) / total).toFixed(0)}%` : '-'} |`);
      if (rows.length > 15) lines.push(`| (${rows.length - 15} more kinds) | ${rows.slice(15).reduce((a, [, e]) => a + e.n, 0)} | ${total > 0 ? rows.slice(15).reduce((a, [, e]) => a + e.ms, 0).toFixed(2) : '-'} | |`);
      lines.push(`| total | ${[...kinds.values()].reduce((a, e) => a + e.n, 0)} | ${total > 0 ? total.toFixed(2) : '-'} | |`);
    }
    const failed = r.results.filter((x) => x.error);
    if (failed.length) lines.push('', ...failed.map((x) => `- ${x.engine} failed on ${x.case} ${x.shape}: ${x.error}`));
    lines.push('');
  }
  return lines.join('\n');
}

// ---- entry ---------------------------------------------------------------------------------------

/** Run a child process measuring one backend; resolves with its report. */
function runChild(backend: Backend, opts: BenchOptions): Promise<AdapterReport> {
  return new Promise((done, fail) => {
    const args = ['--child', '--backend', backend];
    if (opts.quick) args.push('--quick');
    if (opts.engines) args.push('--engines', opts.engines.join(','));
    if (opts.cases?.length) args.push('--cases', opts.cases.join(','));
    if (opts.tuneCache) args.push('--tune-cache', opts.tuneCache);
    const child = fork(join(HERE, 'run.ts'), args, { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let report: AdapterReport | null = null;
    child.on('message', (m) => (report = m as AdapterReport));
    child.on('error', fail);
    child.on('exit', (code) => (report ? done(report) : fail(new Error(`bench child for '${backend}' exited with code ${code} and no report`))));
  });
}

/** The `bench` entry point (also used by `distillkac bench`). Returns the per-adapter reports. */
export async function runBench(opts: BenchOptions = {}): Promise<AdapterReport[]> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const found = await availableBackends();
  const want = !opts.backend || opts.backend === 'all' ? found : [opts.backend as Backend];
  if (want.length === 0) throw new Error('bench: no WebGPU adapter found (install the software GPU with `bash scripts/setup.sh`)');
  const command = `npm run bench --${opts.quick ? ' --quick' : ''}${opts.backend ? ` --backend ${opts.backend}` : ''}${opts.engines ? ` --engines ${opts.engines.join(',')}` : ''}${opts.cases?.length ? ` --cases ${opts.cases.join(',')}` : ''}${opts.tuneCache ? ` --tune-cache ${opts.tuneCache}` : ''}${opts.json ? ` --json ${opts.json}` : ''}${opts.md ? ` --md ${opts.md}` : ''}`;
  const reports: AdapterReport[] = [];
  const write = () => {
    // after every adapter, so an interrupted run keeps what it measured
    if (opts.json) writeFileSync(opts.json, JSON.stringify(reports.length === 1 ? reports[0] : reports, null, 1));
    if (opts.md) writeFileSync(opts.md, markdownReport(reports, command));
  };
  for (const backend of want) {
    log(`== ${backend}`);
    reports.push(await runChild(backend, opts));
    write();
  }
  process.stdout.write(`${markdownReport(reports, command)}\n`);
  return reports;
}

export function parseArgs(argv: string[]): BenchOptions & { child?: boolean } {
  const opts: BenchOptions & { child?: boolean } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench: ${a} needs a value`);
      return v;
    };
    if (a === '--quick') opts.quick = true;
    else if (a === '--child') opts.child = true;
    else if (a === '--json') opts.json = value();
    else if (a === '--md') opts.md = value();
    else if (a === '--backend') opts.backend = value();
    else if (a === '--tune-cache') opts.tuneCache = value();
    else if (a === '--cases') opts.cases = value().split(',');
    else if (a === '--engines') {
      const list = value().split(',') as EngineName[];
      for (const e of list) if (!ENGINES.includes(e)) throw new Error(`bench: unknown engine '${e}' (use ${ENGINES.join(', ')})`);
      opts.engines = list;
    } else throw new Error(`bench: unknown argument '${a}'`);
  }
  return opts;
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.child) {
    const report = await measureAdapter(opts.backend as Backend, opts);
    // Dawn devices may keep the event loop alive; leave once the report is out.
    if (process.send) process.send(report, () => process.exit(0));
    else process.exit(0);
  } else {
    await runBench(opts);
  }
}
