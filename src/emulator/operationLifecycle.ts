/** What an operation GET answers before the outcome: a status, or `done` (the outcome is due). */
export type LifecycleStep = 'notStarted' | 'unknownFutureValue' | 'running' | 'done';

export interface LifecycleSettings {
  /** Count-based: GETs answering notStarted (the first) then running, before the outcome. */
  pollsBeforeSuccess: number;
  /** Time-based instead, when above 0: the outcome is due this long after the export POST. */
  durationMs: number;
  /** Extra GETs answering `unknownFutureValue`, after the first (notStarted) one and before running. */
  unknownStatusPolls: number;
}

/**
 * The status of the `poll`-th GET (1-based) of an operation created `elapsedMs` ago.
 *
 * Count-based: notStarted, then `unknownStatusPolls` x unknownFutureValue, then running until
 * `pollsBeforeSuccess` notStarted/running answers were given; then done.
 * Time-based (`durationMs` > 0): notStarted first, the unknown polls, then running until the duration
 * has passed (a slow operation answers at least once before its outcome).
 */
export function lifecycleStep(settings: LifecycleSettings, poll: number, elapsedMs: number): LifecycleStep {
  const unknown = settings.unknownStatusPolls;
  if (settings.durationMs > 0) {
    if (poll === 1) return 'notStarted';
    if (poll <= unknown + 1) return 'unknownFutureValue';
    return elapsedMs < settings.durationMs ? 'running' : 'done';
  }
  const steps: LifecycleStep[] = [];
  if (settings.pollsBeforeSuccess >= 1) steps.push('notStarted');
  for (let i = 0; i < unknown; i++) steps.push('unknownFutureValue');
  for (let i = 1; i < settings.pollsBeforeSuccess; i++) steps.push('running');
  return steps[poll - 1] ?? 'done';
}
