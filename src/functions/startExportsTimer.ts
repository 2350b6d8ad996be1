import { app, type InvocationContext, type Timer } from '@azure/functions';
import { ExportError } from '../errors';
import { FunctionNames } from '../names';
import type * as StartCore from '../pipeline/startExports';
import { depsFor, lazy } from './invocation';

const core = lazy(() => require('../pipeline/startExports') as typeof StartCore);

/**
 * Daily timer (EXPORT_SCHEDULE, UTC): starts the export of every configured dataset, currency and billing period,
 * and (EXPORT_INVOICE_DISCOVERY=partnerCenter) of the billed datasets of every new invoice.
 */
export async function startExportsTimer(timer: Timer, context: InvocationContext): Promise<void> {
  const deps = depsFor(context);
  if (timer.isPastDue)
    deps.logger.warn('The timer is past due (the app was down at the scheduled time); starting now.');
  const { startExportFailures, startExports } = core();
  const runs = await startExports({ trigger: 'schedule' }, deps);
  for (const run of runs) {
    if (run.error !== undefined) continue;
    deps.logger
      .child({
        runId: run.runId,
        currency: run.currency,
        billingPeriod: run.billingPeriod,
        dataset: run.dataset,
        ...(run.invoiceId === undefined ? {} : { invoiceId: run.invoiceId }),
      })
      .info(run.alreadyInFlight ? `Already in flight (${run.status}).` : `Started (${run.status}).`);
  }
  await deps.telemetry.flush();
  // Every item was tried; now the invocation fails (an error in Application Insights) if any could not start.
  const failures = startExportFailures(runs);
  if (failures.length > 0) {
    throw new ExportError(
      'START_FAILED',
      `${failures.length} of ${runs.length} export(s) could not be started:\n- ${failures.join('\n- ')}`,
    );
  }
}

app.timer(FunctionNames.startExportsTimer, {
  schedule: '%EXPORT_SCHEDULE%',
  runOnStartup: false,
  useMonitor: true,
  handler: startExportsTimer,
});
