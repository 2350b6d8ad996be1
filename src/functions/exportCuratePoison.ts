import { app, type InvocationContext } from '@azure/functions';
import { FunctionNames, HOST_STORAGE_CONNECTION, QueueNames } from '../names';
import type * as CurateCore from '../pipeline/curateExport';
import type * as Messages from '../pipeline/messages';
import { depsFor, lazy } from './invocation';

const core = lazy(() => ({
  ...(require('../pipeline/messages') as typeof Messages),
  ...(require('../pipeline/curateExport') as typeof CurateCore),
}));

/** Queue export-curate-poison: a curation message that failed maxDequeueCount times fails the curation, with the reason. */
export async function exportCuratePoison(queueItem: unknown, context: InvocationContext): Promise<void> {
  const deps = depsFor(context);
  const { decodeMessageBody, runIdOf, handleCurationPoison } = core();
  await handleCurationPoison(decodeMessageBody(queueItem), deps, runIdOf(queueItem));
  await deps.telemetry.flush();
}

app.storageQueue(FunctionNames.exportCuratePoison, {
  queueName: QueueNames.curatePoison,
  connection: HOST_STORAGE_CONNECTION,
  handler: exportCuratePoison,
});
