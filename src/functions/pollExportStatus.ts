import { app, type InvocationContext } from '@azure/functions';
import { FunctionNames, HOST_STORAGE_CONNECTION, QueueNames } from '../names';
import { parseStatusMessage } from '../pipeline/messages';
import { pollExportStatus as poll } from '../pipeline/pollExportStatus';
import { depsFor, rejectMessage } from './invocation';

/** Queue export-status: one status check of a Graph export operation (re-schedules itself while it runs). */
export async function pollExportStatus(queueItem: unknown, context: InvocationContext): Promise<void> {
  const deps = depsFor(context);
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
