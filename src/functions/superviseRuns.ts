import { app, type InvocationContext, type Timer } from '@azure/functions';
import { FunctionNames, SUPERVISE_SCHEDULE } from '../names';
import type * as SuperviseCore from '../pipeline/superviseRuns';
import { depsFor, lazy } from './invocation';

const core = lazy(() => require('../pipeline/superviseRuns') as typeof SuperviseCore);

/** Every 10 minutes: resumes runs whose next step is overdue, or fails them with RUN_STALLED past the limit. */
export async function superviseRuns(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = depsFor(context);
  try {
    const report = await core().superviseRuns(deps);
    if (report.errors > 0) {
      throw new Error(`The supervisor could not look after ${report.errors} run(s); see the log lines above.`);
    }
  } finally {
    await deps.telemetry.flush();
  }
}

app.timer(FunctionNames.superviseRuns, {
  schedule: SUPERVISE_SCHEDULE,
  runOnStartup: false,
  useMonitor: true,
  handler: superviseRuns,
});
