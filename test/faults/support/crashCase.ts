/**
 * One crash-and-resume case: a host process dies by SIGKILL at a crash point while it carries a run;
 * a fresh host (and, when the run is overdue, the supervisor) takes over; the invariants must hold.
 */
import { TERMINAL_STATUSES } from '../../../src/pipeline/ports';
import { announceGraceMs } from '../../../src/pipeline/superviseRuns';
import type { FaultEnv, HostExit, HostProcess } from './faultEnv';
import { checkSeries, type InvariantReport, terminalEvents } from './invariants';

export interface CrashCase {
  /**
   * `<crash point>#<n>` where the serving host dies; or `external:<status>`: the test itself sends SIGKILL
   * as soon as it sees the run in that status (works whether or not the pipeline calls crash points).
   */
  hostCrash: string;
  /** `<crash point>#<n>` where the (first) supervisor invocation dies, if any. */
  supervisorCrash?: string;
  /** Harness self-test: the crash point is called by the host process at the copy handler's entry. */
  atHandlerEntry?: boolean;
}

export interface CrashCaseResult {
  label: string;
  currency: string;
  exit: HostExit;
  report: InvariantReport;
  supervisorCalls: number;
  /** Ended runs whose end event the killed process lost, sent by the supervisor. */
  eventsAnnounced: number;
  restPosts: number;
  /** Seconds from the start to the end of the checks. */
  seconds: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function caseLabel(c: CrashCase): string {
  if (c.atHandlerEntry) return `${c.hostCrash} at the copy handler's entry (harness self-test)`;
  return c.supervisorCrash === undefined ? c.hostCrash : `${c.hostCrash} then supervisor at ${c.supervisorCrash}`;
}

/** The stall limit the hosts were given, in ms (EXPORT_STALL_MINUTES). */
function stallMs(env: FaultEnv): number {
  return Math.ceil(Number(env.settings['EXPORT_STALL_MINUTES'] ?? '0.05') * 60_000);
}

async function allTerminal(env: FaultEnv, currency: string): Promise<boolean> {
  const runs = await env.runsOf(currency);
  return runs.length > 0 && runs.every((r) => TERMINAL_STATUSES.includes(r.status));
}

async function waitTerminal(env: FaultEnv, currency: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await allTerminal(env, currency)) return true;
    await sleep(250);
  }
  return allTerminal(env, currency);
}

/**
 * Waits for every run of the currency to end; what redelivery does not finish, the supervisor must:
 * it is called (after the stall limit) up to EXPORT_MAX_RESUMES + 3 times. Returns the supervisor calls.
 */
export async function finishWithSupervisor(env: FaultEnv, currency: string, firstWaitMs = 20_000): Promise<number> {
  const maxResumes = Number(env.settings['EXPORT_MAX_RESUMES'] ?? '3');
  let calls = 0;
  let done = await waitTerminal(env, currency, firstWaitMs);
  while (!done && calls < maxResumes + 3) {
    await sleep(stallMs(env) + 500);
    calls++;
    await env.supervise({ name: `supervisor:${currency}` });
    done = await waitTerminal(env, currency, 15_000);
  }
  return calls;
}

/**
 * A run that ended in a process killed before it sent the end event (or marked it sent) has no ExportRunCompleted /
 * ExportRunFailed: once the supervisor's grace for it has passed, one sweep must send it. Returns how many ended runs
 * had no event before that sweep (0, and no sweep, when every ended run has its event).
 */
async function announceWithSupervisor(env: FaultEnv, currency: string): Promise<number> {
  const silent = async () =>
    (await env.runsOf(currency)).filter(
      (r) => TERMINAL_STATUSES.includes(r.status) && terminalEvents(env, r.runId).length === 0,
    );
  // The live host flushes its telemetry every 300 ms: give an event already sent time to arrive.
  const deadline = Date.now() + 10_000;
  let missing = await silent();
  while (missing.length > 0 && Date.now() < deadline) {
    await sleep(250);
    missing = await silent();
  }
  if (missing.length === 0) return 0;
  const lastWrite = Math.max(...missing.map((r) => Date.parse(r.updatedAt)));
  const grace = announceGraceMs(Number(env.settings['EXPORT_STALL_MINUTES'] ?? '0.05'));
  await sleep(Math.max(0, lastWrite + grace + 1000 - Date.now()));
  await env.supervise({ name: `supervisor-announce:${currency}` });
  return missing.length;
}

/**
 * Runs the case. Throws (with the reason) when the crash point was never reached: the host must die by
 * SIGKILL after printing `fault: crash point <name>#<n> reached; SIGKILL`.
 */
export async function runCrashCase(env: FaultEnv, c: CrashCase, currency: string): Promise<CrashCaseResult> {
  const began = Date.now();
  const label = caseLabel(c);
  const external = c.hostCrash.startsWith('external:') ? c.hostCrash.slice('external:'.length) : undefined;
  const a = await env.spawnHost({
    name: `crash:${c.hostCrash}`,
    ...(external === undefined ? { crashPoint: c.hostCrash } : {}),
    ...(c.atHandlerEntry ? { env: { FAULTS_HANDLER_CRASH: '1' } } : {}),
  });
  let watching = external !== undefined;
  const watcher = (async () => {
    while (watching && a.exit === undefined) {
      const runs = await env.runsOf(currency);
      if (runs.some((r) => r.status === external)) {
        await a.kill('SIGKILL');
        return;
      }
      await sleep(50);
    }
  })();
  let postedOk = false;
  try {
    const posted = await env.post(a, { currencies: [currency] });
    postedOk = posted.status === 202;
    if (!postedOk && a.exit === undefined) {
      throw new Error(`${label}: POST /api/exports answered ${posted.status}: ${JSON.stringify(posted.json)}`);
    }
  } catch (error) {
    // A start-phase crash point kills the process under the request: the connection drops.
    if (!/fetch failed|socket|ECONNRESET|other side closed/i.test(String((error as Error)?.cause ?? error))) {
      if (a.exit === undefined) throw error;
    }
  }

  // The host dies at its crash point, or the run ends with the host alive: the point was never reached.
  const deadline = Date.now() + 60_000;
  let endedAliveSince: number | undefined;
  while (a.exit === undefined && Date.now() < deadline) {
    if (await allTerminal(env, currency)) {
      endedAliveSince ??= Date.now();
      // A point after the final write (end.*, ledger.afterWrite) may come a moment later.
      if (Date.now() - endedAliveSince > 3000) break;
    }
    await sleep(200);
  }
  watching = false;
  await watcher;
  if (a.exit === undefined) {
    await a.kill('SIGKILL');
    const runs = await env.runsOf(currency);
    throw new Error(
      external !== undefined
        ? `${label}: the run never reached "${external}" while the host lived`
        : `${label}: crash point never reached: the host was not killed (no "fault: crash point ${c.hostCrash} reached; SIGKILL"); ` +
            `the pipeline does not call crashPoint('${c.hostCrash.split('#')[0]}') on this path yet. ` +
            `Runs: ${runs.map((r) => `${r.runId} ${r.status}`).join(', ') || 'none'}`,
    );
  }
  const exit = a.exit;
  if (exit.signal !== 'SIGKILL' || (external === undefined && exit.crashPoint === undefined)) {
    throw new Error(
      `${label}: the host ended without reaching its crash point: ${JSON.stringify(exit)}\n${env.recentLogs(20)}`,
    );
  }

  // What the killed process left: Graph exports no run owns yet (the documented window between Graph's 202 and
  // the ledger write). A run it ended without sending the end event is announced by the supervisor (below).
  const atKill = await env.runsOf(currency);
  const opsAtKill = env.emulator.operations().filter((op) => op.currency === currency);
  const unowned = opsAtKill.filter(
    (op) => !atKill.some((r) => r.operationId === op.id || (r.operationUrl ?? '').includes(op.id)),
  ).length;

  let supervisorCalls = 0;
  let restPosts = 0;
  let eventsAnnounced = 0;
  if (c.supervisorCrash !== undefined) {
    // Nobody serves the queues: wait until the run is overdue, then the supervisor dies after resuming it.
    await sleep(stallMs(env) + 500);
    supervisorCalls++;
    const supervised = await env.supervise({
      name: `supervisor-crash:${c.supervisorCrash}`,
      crashPoint: c.supervisorCrash,
    });
    if (supervised.exit.signal !== 'SIGKILL' || supervised.exit.crashPoint === undefined) {
      throw new Error(
        `${label}: supervisor crash point never reached (exit ${JSON.stringify(supervised.exit)}): the supervisor resumed nothing or does not call crashPoint('${c.supervisorCrash.split('#')[0]}').`,
      );
    }
  }

  const b: HostProcess = await env.spawnHost({ name: `resume:${c.hostCrash}` });
  try {
    if (!postedOk) {
      // The caller saw its request fail and asks again, as a user or the next timer would.
      restPosts++;
      const again = await env.post(b, { currencies: [currency] });
      if (again.status !== 202)
        throw new Error(`${label}: the repeated POST answered ${again.status}: ${JSON.stringify(again.json)}`);
    }
    // Redelivered messages should finish the run; what they cannot, the supervisor resumes or fails.
    supervisorCalls += await finishWithSupervisor(env, currency);
    eventsAnnounced = await announceWithSupervisor(env, currency);
    if (eventsAnnounced > 0) supervisorCalls++;
  } finally {
    await b.stop();
  }

  const report = await checkSeries(env, { currency, allowedOrphanExports: Math.min(unowned, 1) });
  return {
    label,
    currency,
    exit,
    report,
    supervisorCalls,
    eventsAnnounced,
    restPosts,
    seconds: (Date.now() - began) / 1000,
  };
}
