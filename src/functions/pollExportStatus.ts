import { app, type InvocationContext } from '@azure/functions';
import { FunctionNames, HOST_STORAGE_CONNECTION, QueueNames } from '../names';
import type * as Messages from '../pipeline/messages';
import type * as PollCore from '../pipeline/pollExportStatus';
import { depsFor, lazy, rejectMessage } from './invocation';

const core = lazy(() => ({
  ...(require('../pipeline/messages') as typeof Messages),
  ...(require('../pipeline/pollExportStatus') as typeof PollCore),
}));

/** Queue export-status: one status check of a Graph export operation (re-schedules itself while it runs). */
export async function pollExportStatus(queueItem: unknown, context: InvocationContext): Promise<void> {
  const deps = depsFor(context);
  const { parseStatusMessage, pollExportStatus: poll } = core();
  let message: ReturnType<typeof parseStatusMessage>;
  try {
    message = parseStatusMessage(queueItem);
  } catch (error) {
    await rejectMessage(deps, QueueNames.status, queueItem, error);
    return;
  }
  await poll(message, deps);
  await deps.telemetry.flush();
}

app.storageQueue(FunctionNames.pollExportStatus, {
  queueName: QueueNames.status,
  connection: HOST_STORAGE_CONNECTION,
  handler: pollExportStatus,
});
