import { app, type InvocationContext } from '@azure/functions';
import { FunctionNames, HOST_STORAGE_CONNECTION, QueueNames } from '../names';
import type * as CopyCore from '../pipeline/copyExportBlob';
import type * as Messages from '../pipeline/messages';
import { depsFor, lazy, rejectMessage } from './invocation';

const core = lazy(() => ({
  ...(require('../pipeline/messages') as typeof Messages),
  ...(require('../pipeline/copyExportBlob') as typeof CopyCore),
}));

/** Queue export-copy: copies one exported blob into the destination; the last one writes manifest.json. */
export async function copyExportBlob(queueItem: unknown, context: InvocationContext): Promise<void> {
  const deps = depsFor(context);
  const { parseCopyMessage, copyExportBlob: copy } = core();
  let message: ReturnType<typeof parseCopyMessage>;
  try {
    message = parseCopyMessage(queueItem);
  } catch (error) {
    await rejectMessage(deps, QueueNames.copy, queueItem, error);
    return;
  }
  await copy(message, deps);
  await deps.telemetry.flush();
}

app.storageQueue(FunctionNames.copyExportBlob, {
  queueName: QueueNames.copy,
  connection: HOST_STORAGE_CONNECTION,
  handler: copyExportBlob,
});
