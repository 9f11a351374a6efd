// distillkac report: one HTML page for a run folder.
import { existsSync } from 'node:fs';
import { writeReport } from '../../eval/report';
import { UsageError, command } from '../flags';

export const report = command({
  summary: 'Write an HTML report (metrics table, sample grids, loss curves) for a run folder.',
  flags: {
    run: { type: 'path', default: 'runs/demo', help: 'run folder holding eval/ and training logs' },
  },
  async run(f) {
    if (!existsSync(f.run)) throw new UsageError(`--run: no such folder ${f.run}; give the --out folder of a demo (holding eval/ and the training logs)`);
    console.log(`report: ${writeReport(f.run)}`);
  },
});
