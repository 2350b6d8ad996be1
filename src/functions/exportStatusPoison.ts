import { app, type InvocationContext } from '@azure/functions';
import { FunctionNames, HOST_STORAGE_CONNECTION, QueueNames } from '../names';
import { handlePoisonMessage } from '../pipeline/handlePoisonMessage';
import { depsFor } from './invocation';

/** Queue export-status-poison: a status check that failed maxDequeueCount times fails its run, with the reason. */
export async function exportStatusPoison(queueItem: unknown, context: InvocationContext): Promise<void> {
  const deps = depsFor(context);
  await handlePoisonMessage(QueueNames.statusPoison, queueItem, deps);
  await deps.telemetry.flush();
}

app.storageQueue(FunctionNames.exportStatusPoison, {
  queueName: QueueNames.statusPoison,
  connection: HOST_STORAGE_CONNECTION,
  handler: exportStatusPoison,
});
