import { app, type InvocationContext } from '@azure/functions';
import { FunctionNames, HOST_STORAGE_CONNECTION, QueueNames } from '../names';
import type * as CurateCore from '../pipeline/curateExport';
import type * as Messages from '../pipeline/messages';
import { depsFor, lazy, rejectMessage } from './invocation';

const core = lazy(() => ({
  ...(require('../pipeline/messages') as typeof Messages),
  ...(require('../pipeline/curateExport') as typeof CurateCore),
}));

/**
 * Queue export-curate: converts one raw file of a succeeded run into typed Parquet and FOCUS parts (DuckDB is loaded
 * by the first conversion, here and nowhere else); the last file publishes the version.
 */
export async function curateExportFile(queueItem: unknown, context: InvocationContext): Promise<void> {
  const deps = depsFor(context);
  const { parseCurateMessage, curateExportFile: curate } = core();
  let message: ReturnType<typeof parseCurateMessage>;
  try {
    message = parseCurateMessage(queueItem);
  } catch (error) {
    await rejectMessage(deps, QueueNames.curate, queueItem, error);
    return;
  }
  await curate(message, deps);
  await deps.telemetry.flush();
}

app.storageQueue(FunctionNames.curateExportFile, {
  queueName: QueueNames.curate,
  connection: HOST_STORAGE_CONNECTION,
  handler: curateExportFile,
});
