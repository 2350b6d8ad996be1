import type { CurationRecord } from '../pipeline/curationPorts';
import { FINAL_CURATION_STATUSES } from '../pipeline/curationPorts';
import type { PipelineDeps } from '../pipeline/deps';
import type { RunRecord } from '../pipeline/ports';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Waits until the curation of every succeeded run has ended (EXPORT_CURATION on), or the deadline. A run's finisher
 * creates its curation right after `succeeded`, so a missing one is waited for too. Returns the curations by run id
 * (a run without one is absent: curation off, or not started before the deadline).
 */
export async function waitForCurations(
  runs: RunRecord[],
  deps: PipelineDeps,
  timeoutMs: number,
  intervalMs = 500,
  /** How long a succeeded run may be without a curation before it is not waited for (its start failed: logged). */
  startGraceMs = 60_000,
): Promise<Map<string, CurationRecord>> {
  const found = new Map<string, CurationRecord>();
  const ledger = deps.curation?.ledger;
  if (ledger === undefined || !deps.config.curation.enabled) return found;
  const wanted = runs.filter((run) => run.status === 'succeeded').map((run) => run.runId);
  const deadline = Date.now() + timeoutMs;
  const startDeadline = Date.now() + startGraceMs;
  for (;;) {
    for (const runId of wanted) {
      const current = found.get(runId);
      if (current !== undefined && FINAL_CURATION_STATUSES.includes(current.status)) continue;
      const read = await ledger.getCuration(runId);
      if (read !== undefined) found.set(runId, read.value);
    }
    const done = wanted.every((runId) => {
      const curation = found.get(runId);
      if (curation === undefined) return Date.now() > startDeadline;
      return FINAL_CURATION_STATUSES.includes(curation.status);
    });
    if (done || Date.now() > deadline) return found;
    await sleep(intervalMs);
  }
}
