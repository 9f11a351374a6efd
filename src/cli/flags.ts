// A small, strict flag parser for the CLI: every flag is declared with a type, a default and help;
// unknown flags and bad values are errors (exit code 2) naming the flag and what it accepts.
// `--config FILE` reads a JSON object whose keys are flag names; flags on the command line win.
import { readFileSync } from 'node:fs';

export type FlagType = 'int' | 'float' | 'string' | 'bool' | 'list' | 'path';

export interface FlagSpec {
  type: FlagType;
  help: string;
  default?: unknown;
  /** allowed values for strings */
  choices?: readonly string[];
  /** lower bound for numbers */
  min?: number;
  /** upper bound for numbers */
  max?: number;
  /** must be given */
  required?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;

// What parseFlags returns for a spec, so a command reads `f.steps` as a number, not `unknown`:
// choices narrow strings to their union; a flag with neither a default nor `required` may be absent.
type FlagBase<S extends FlagSpec> = S['type'] extends 'int' | 'float' ? number
  : S['type'] extends 'bool' ? boolean
  : S['type'] extends 'list' ? (S extends { choices: readonly (infer C)[] } ? C[] : string[])
  : S extends { choices: readonly (infer C)[] } ? C : string;
export type FlagValue<S extends FlagSpec> = S extends { required: true } | { default: unknown } ? FlagBase<S> : FlagBase<S> | undefined;
export type Flags<S extends FlagSpecs> = { -readonly [K in keyof S]: FlagValue<S[K]> };

/** Declare flags keeping their literal types (choices, defaults), which `Flags` reads. */
export const defineFlags = <const S extends FlagSpecs>(specs: S): S => specs;

export class UsageError extends Error {
  override name = 'UsageError';
}

function convert(name: string, spec: FlagSpec, raw: unknown): unknown {
  const bad = (what: string) => new UsageError(`--${name}: ${what} (got ${JSON.stringify(raw)})`);
  switch (spec.type) {
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw bad('expected true or false');
    case 'int':
    case 'float': {
      // from --config, only a number or a string is one (Number(true) is 1, Number(null) is 0)
      if ((typeof raw !== 'number' && typeof raw !== 'string') || (typeof raw === 'string' && raw.trim() === '')) throw bad('expected a number');
      const v = Number(raw);
      if (!Number.isFinite(v) || (spec.type === 'int' && !Number.isInteger(v))) throw bad(`expected ${spec.type === 'int' ? 'an integer' : 'a number'}`);
      if (spec.min !== undefined && v < spec.min) throw bad(`must be at least ${spec.min}`);
      if (spec.max !== undefined && v > spec.max) throw bad(`must be at most ${spec.max}`);
      return v;
    }
    case 'list': {
      const items = Array.isArray(raw) ? raw.map(String) : String(raw).split(',').map((s) => s.trim()).filter(Boolean);
      if (items.length === 0) throw bad('expected a comma-separated list');
      const wrong = spec.choices ? items.filter((x) => !spec.choices!.includes(x)) : [];
      if (wrong.length) throw bad(`unknown ${wrong.join(', ')}: expected some of ${spec.choices!.join(', ')}`);
      return items;
    }
    case 'string':
    case 'path': {
      if (typeof raw !== 'string' || raw === '') throw bad('expected a value');
      if (spec.choices && !spec.choices.includes(raw)) throw bad(`expected one of ${spec.choices.join(', ')}`);
      return raw;
    }
  }
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

/** Parse argv (after the subcommand) against `specs`. */
export function parseFlags<S extends FlagSpecs>(argv: string[], specs: S): Flags<S> {
  const given: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}' (flags look like --name value)`);
    let [name, value] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const spec = specs[name] ?? (name === 'config' ? { type: 'path' as const, help: '' } : undefined);
    if (!spec) {
      const near = Object.keys(specs).filter((k) => editDistance(k, name) <= 2);
      throw new UsageError(`unknown flag --${name}${near.length ? ` (did you mean ${near.map((k) => `--${k}`).join(', ')}?)` : ''}; see --help`);
    }
    if (value === undefined) {
      if (spec.type === 'bool' && (argv[i + 1] === undefined || argv[i + 1].startsWith('--'))) value = 'true';
      else if (argv[i + 1] === undefined) throw new UsageError(`--${name} needs a value`);
      else value = argv[++i];
    }
    given[name] = value;
  }
  let fromFile: Record<string, unknown> = {};
  if (given.config !== undefined) {
    const path = String(given.config);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new UsageError(`--config: cannot read ${path}: ${(e as Error).message}`);
    }
    try {
      fromFile = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`--config: ${path} is not valid JSON: ${(e as Error).message}`);
    }
    if (!fromFile || typeof fromFile !== 'object' || Array.isArray(fromFile)) throw new UsageError(`--config: ${path} must hold a JSON object of flag names to values`);
    for (const k of Object.keys(fromFile)) if (!specs[k]) throw new UsageError(`--config: ${path} has unknown key "${k}"; see --help`);
    delete given.config;
  }
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const raw = name in given ? given[name] : name in fromFile ? fromFile[name] : undefined;
    if (raw === undefined) {
      if (spec.required) throw new UsageError(`--${name} is required: ${spec.help}`);
      out[name] = spec.default;
    } else {
      out[name] = convert(name, spec, raw);
    }
  }
  // convert() checked each value against its spec, which is what Flags<S> states
  return out as Flags<S>;
}

/** A subcommand: its flags and what it does with them. */
export interface Command<S extends FlagSpecs> {
  summary: string;
  flags: S;
  run(flags: Flags<S>): Promise<void>;
}

/** A command with its flag types erased, for the table in main.ts; `invoke` parses, then runs. */
export interface AnyCommand {
  summary: string;
  flags: FlagSpecs;
  invoke(argv: string[]): Promise<void>;
}

export function command<const S extends FlagSpecs>(c: Command<S>): AnyCommand {
  return { summary: c.summary, flags: c.flags, invoke: (argv) => c.run(parseFlags(argv, c.flags)) };
}

export function helpText(command: string, summary: string, specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const left = `  --${name}${s.type === 'bool' ? '' : ` <${s.choices ? s.choices.join('|') : s.type}>`}`;
    const def = s.required ? ' (required)' : s.default !== undefined ? ` (default: ${Array.isArray(s.default) ? s.default.join(',') : s.default})` : '';
    return `${left.padEnd(34)} ${s.help}${def}`;
  });
  return `usage: distillkac ${command} [flags]\n\n${summary}\n\nflags:\n${rows.join('\n')}\n  --config <path>                    JSON file of flag values (command-line flags win)\n  --help                             this text\n`;
}
