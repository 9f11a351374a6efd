// The distillkac command: picks the subcommand, parses its flags, runs it, maps errors to exit codes
// (2: usage, 1: failure). Each command is one file in commands/.
import { bench } from './commands/bench';
import { demo } from './commands/demo';
import { distill } from './commands/distill';
import { evalCommand } from './commands/eval';
import { report } from './commands/report';
import { sampleCommand } from './commands/sample';
import { train } from './commands/train';
import { type AnyCommand, UsageError, helpText } from './flags';

export { labelsFor } from './commands/sample';

const COMMANDS: Record<string, AnyCommand> = {
  train, distill, sample: sampleCommand, eval: evalCommand, report, bench, demo: demo(main),
};

const USAGE = `usage: distillkac <command> [flags]   (distillkac <command> --help for its flags)

commands:
${Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(9)} ${v.summary}`).join('\n')}
`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`distillkac: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  if (rest.includes('--help')) {
    console.log(helpText(name, cmd.summary, cmd.flags));
    return 0;
  }
  try {
    await cmd.invoke(rest);
    return 0;
  } catch (e) {
    console.error(`distillkac ${name}: ${(e as Error).message}`);
    return e instanceof UsageError ? 2 : 1;
  }
}
