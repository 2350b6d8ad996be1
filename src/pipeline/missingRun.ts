import type { PipelineDeps } from './deps';

/**
 * A message names a run the ledger does not have: its row was deleted while the run was in flight (by hand, or by a
 * cleanup of the table). Nothing can move or end that run any more and no end event will come, so this is said
 * loudly: an error line and the ExportRunMissing event (code RUN_NOT_FOUND), which an alert can count. The message
 * itself is dropped: delivering it again cannot bring the row back. `queue` is empty when the row went missing in
 * the middle of a step (its write found no row).
 */
export function reportMissingRun(deps: PipelineDeps, details: { runId: string; queue: string; step: string }): void {
  deps.logger
    .child({ runId: details.runId })
    .error(
      `RUN_NOT_FOUND: ${details.step}${details.queue === '' ? '' : ` (queue ${details.queue})`} names run ${details.runId}, which is not in the run ledger: its row was deleted while the run was in flight. The step is dropped; nothing will finish or fail this run and its folder, if any, is not complete. Start the export again if the data is needed.`,
    );
  deps.telemetry.runMissing(details);
}
