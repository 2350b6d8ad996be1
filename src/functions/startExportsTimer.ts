import { app, type InvocationContext, type Timer } from '@azure/functions';
import { FunctionNames } from '../names';
import type * as StartCore from '../pipeline/startExports';
import { depsFor, lazy } from './invocation';

const core = lazy(() => require('../pipeline/startExports') as typeof StartCore);

/** Daily timer (EXPORT_SCHEDULE, UTC): starts the export of every configured currency and billing period. */
export async function startExportsTimer(timer: Timer, context: InvocationContext): Promise<void> {
  const deps = depsFor(context);
  if (timer.isPastDue)
    deps.logger.warn('The timer is past due (the app was down at the scheduled time); starting now.');
  const runs = await core().startExports({ trigger: 'schedule' }, deps);
  for (const run of runs) {
    deps.logger
      .child({ runId: run.runId, currency: run.currency, billingPeriod: run.billingPeriod })
      .info(run.alreadyInFlight ? `Already in flight (${run.status}).` : `Started (${run.status}).`);
  }
  await deps.telemetry.flush();
}

app.timer(FunctionNames.startExportsTimer, {
  schedule: '%EXPORT_SCHEDULE%',
  runOnStartup: false,
  useMonitor: true,
  handler: startExportsTimer,
});
