import { app, type InvocationContext } from '@azure/functions';
import { FunctionNames, HOST_STORAGE_CONNECTION, QueueNames } from '../names';
import type * as PoisonCore from '../pipeline/handlePoisonMessage';
import { depsFor, lazy } from './invocation';

const core = lazy(() => require('../pipeline/handlePoisonMessage') as typeof PoisonCore);

/** Queue export-copy-poison: a blob copy that failed maxDequeueCount times fails its run, with the reason. */
export async function exportCopyPoison(queueItem: unknown, context: InvocationContext): Promise<void> {
  const deps = depsFor(context);
  await core().handlePoisonMessage(QueueNames.copyPoison, queueItem, deps);
  await deps.telemetry.flush();
}

app.storageQueue(FunctionNames.exportCopyPoison, {
  queueName: QueueNames.copyPoison,
  connection: HOST_STORAGE_CONNECTION,
  handler: exportCopyPoison,
});
