import { redact } from '../redact';
import type { PipelineDeps } from './deps';
import { decodeMessageBody, runIdOf } from './messages';
import { endRun, isTerminal } from './runStateMachine';

/**
 * A message reached a poison queue (it failed maxDequeueCount times, or was not valid base64):
 * the run it belongs to fails with the reason; a message without a run is recorded. Never dropped silently.
 */
export async function handlePoisonMessage(queue: string, raw: unknown, deps: PipelineDeps): Promise<void> {
  const runId = runIdOf(raw);
  const body = decodeMessageBody(raw);
  const copied = copiedBlobsOf(body);
  const excerpt = redact(typeof body === 'string' ? body : (JSON.stringify(body) ?? String(raw))).slice(0, 500);
  if (runId === undefined) {
    const reason = `A message in ${queue} names no run; recorded and dropped.`;
    deps.logger.error(`${reason} Message: ${excerpt}`);
    await deps.ledger.recordRejectedMessage(queue, reason, excerpt);
    deps.telemetry.messagePoisoned({ queue, runId: undefined, reason, runStatus: '', endedRun: false });
    return;
  }
  const found = await deps.ledger.getRun(runId);
  const what = copied ?? 'a status check';
  if (found === undefined) {
    const reason = `${what} of unknown run ${runId} was poisoned.`;
    deps.logger.child({ runId }).error(reason);
    await deps.ledger.recordRejectedMessage(queue, reason, excerpt);
    deps.telemetry.messagePoisoned({ queue, runId, reason, runStatus: '', endedRun: false });
    return;
  }
  const run = found.value;
  const reason = `${what} failed repeatedly and reached ${queue}${
    run.lastError !== undefined && run.lastError !== '' ? `; last error: ${run.lastError}` : ''
  }`;
  const poisoned = (runStatus: string, endedRun: boolean) =>
    deps.telemetry.messagePoisoned({
      queue,
      runId,
      reason: redact(reason),
      runStatus,
      endedRun,
      dataset: run.dataset ?? 'unbilledUsage',
      invoiceId: run.invoiceId,
    });
  const log = deps.logger.child({ runId, currency: run.currency, billingPeriod: run.billingPeriod });
  if (isTerminal(run.status)) {
    log.warn(`Poisoned message for a run already ${run.status}: ${redact(reason)}`);
    poisoned(run.status, false);
    return;
  }
  // Through the state machine: a run that ended meanwhile stays as it ended, and a copying run whose folder already
  // holds manifest.json completes instead of failing.
  const ended = await endRun(deps, runId, 'failed', 'MESSAGE_POISONED', reason);
  if (ended === 'failed') {
    // This write ended the run: the event carries the status it wrote and says that the poisoning ended the run
    // (the poison alert fires on endedRun, ExportRunFailed follows).
    poisoned('failed', true);
    return;
  }
  // The run ended otherwise: completed from its manifest.json (ended === 'succeeded'), or by another worker between
  // the read above and the conditional write (read again). Its final status lets the alert skip it.
  const final = ended ?? (await deps.ledger.getRun(runId))?.value.status ?? '';
  log.warn(`Poisoned message for a run that ended ${final === '' ? 'meanwhile' : final}: ${redact(reason)}`);
  poisoned(final, false);
}

/** "the copy of <blob>" (or "the copies of N blobs (a, b, …)" for a batch) of a copy message; undefined otherwise. */
function copiedBlobsOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { blobName, blobNames } = body as { blobName?: unknown; blobNames?: unknown };
  if (typeof blobName === 'string') return `the copy of ${blobName}`;
  if (!Array.isArray(blobNames)) return undefined;
  const names = blobNames.filter((name): name is string => typeof name === 'string');
  if (names.length === 0) return undefined;
  const shown = names.slice(0, 3).join(', ');
  return `the copies of ${names.length} blobs (${shown}${names.length > 3 ? ', …' : ''})`;
}
