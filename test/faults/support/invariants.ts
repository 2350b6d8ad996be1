/**
 * The invariants every fault test checks after the dust settles, per series (currency × period):
 * - every run ends exactly once: a terminal status, and at most one ExportRunCompleted/ExportRunFailed
 *   (exactly one unless the process that made the final transition was killed before its telemetry left);
 * - no run is left non-terminal;
 * - a folder with manifest.json belongs to a succeeded run, a succeeded run has its manifest.json;
 * - every blob of a succeeded run is byte-identical to the export blob; manifest.json lists exactly them;
 * - latest.json points at the newest succeeded run;
 * - no Graph export that no run owns (a second export), except where the test allows the documented
 *   window (a process died between Graph's 202 and the ledger write);
 * - data lost: series expected to succeed that have no complete folder, and blobs missing or different.
 * Problems are collected (not thrown at the first) so one report names everything wrong.
 */
import { createHash } from 'node:crypto';
import { EMULATOR_DEV_TOKEN } from '../../../src/adapters/graph/devToken';
import { DEV_STORE_ACCOUNT, MS_BILLING_ACCOUNT, PARTNER_DEST_ACCOUNT } from '../../../src/local/azurite';
import { TelemetryEvents } from '../../../src/names';
import { type RunRecord, TERMINAL_STATUSES } from '../../../src/pipeline/ports';
import { type FaultEnv, PREFIX } from './faultEnv';

export interface SeriesExpectation {
  currency: string;
  /** Billing periods started for this currency (default: current). */
  periods?: string[];
  /** Each series must end with a succeeded run (default true). */
  expectSuccess?: boolean;
  /** Graph exports no run owns that are acceptable (the documented window); default 0. */
  allowedOrphanExports?: number;
  container?: string;
}

export interface InvariantReport {
  runs: number;
  succeeded: number;
  nonTerminal: number;
  graphExports: number;
  orphanExports: number;
  dataLost: number;
  blobsVerified: number;
  problems: string[];
}

const RUN_FOLDER = new RegExp(
  `^${PREFIX}/billingMonth=(\\d{4}-\\d{2})/currency=([A-Z]{3})/attributeSet=(full|basic)/run=([^/]+)/(.+)$`,
);
const LATEST = new RegExp(
  `^${PREFIX}/billingMonth=(\\d{4}-\\d{2})/currency=([A-Z]{3})/attributeSet=(full|basic)/latest\\.json$`,
);

export function emptyReport(): InvariantReport {
  return {
    runs: 0,
    succeeded: 0,
    nonTerminal: 0,
    graphExports: 0,
    orphanExports: 0,
    dataLost: 0,
    blobsVerified: 0,
    problems: [],
  };
}

export function addReports(into: InvariantReport, from: InvariantReport): InvariantReport {
  into.runs += from.runs;
  into.succeeded += from.succeeded;
  into.nonTerminal += from.nonTerminal;
  into.graphExports += from.graphExports;
  into.orphanExports += from.orphanExports;
  into.dataLost += from.dataLost;
  into.blobsVerified += from.blobsVerified;
  into.problems.push(...from.problems);
  return into;
}

export function terminalEvents(env: FaultEnv, runId: string) {
  return env.ingestion.items.filter(
    (item) =>
      item.baseType === 'EventData' &&
      (item.name === TelemetryEvents.runCompleted || item.name === TelemetryEvents.runFailed) &&
      item.properties['runId'] === runId,
  );
}

/**
 * The run's end events once the first has arrived (or after `timeoutMs`, the events there are). A host flushes
 * telemetry every 300 ms: on a busy machine the event can arrive after the ledger row says the run ended.
 */
export async function endEventsOf(env: FaultEnv, runId: string, timeoutMs = 15_000) {
  await env
    .waitUntil(
      `the end event of ${runId}`,
      async () => (terminalEvents(env, runId).length > 0 ? true : undefined),
      timeoutMs,
    )
    .catch(() => undefined);
  return terminalEvents(env, runId);
}

/** Checks one currency's series; returns what it found (problems listed, nothing thrown). */
export async function checkSeries(env: FaultEnv, expectation: SeriesExpectation): Promise<InvariantReport> {
  const report = emptyReport();
  const { currency } = expectation;
  const periods = expectation.periods ?? ['current'];
  const container = expectation.container;
  const problem = (text: string) => report.problems.push(`${currency}: ${text}`);
  const runs = await env.runsOf(currency);
  report.runs = runs.length;
  const byId = new Map(runs.map((r) => [r.runId, r]));
  // Telemetry arrives a moment after the ledger write (the hosts flush every 300 ms): give it time.
  const deadline = Date.now() + 10_000;
  const missing = () =>
    runs.filter((r) => TERMINAL_STATUSES.includes(r.status) && terminalEvents(env, r.runId).length === 0);
  while (missing().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));

  for (const run of runs) {
    const terminal = TERMINAL_STATUSES.includes(run.status);
    if (!terminal) {
      report.nonTerminal++;
      problem(`run ${run.runId} (${run.billingPeriod}) is left "${run.status}" (updated ${run.updatedAt})`);
    }
    if (run.status === 'succeeded') report.succeeded++;
    const events = terminalEvents(env, run.runId);
    if (events.length > 1) {
      problem(
        `run ${run.runId} ended ${events.length} times: ${events.map((e) => `${e.name}/${e.properties['status']}`).join(', ')}`,
      );
    } else if (terminal && events.length === 0) {
      problem(`run ${run.runId} is ${run.status} but sent no ExportRunCompleted/ExportRunFailed`);
    } else if (events.length === 1 && terminal && events[0]?.properties['status'] !== run.status) {
      problem(`run ${run.runId} is ${run.status} but its event says ${events[0]?.properties['status']}`);
    } else if (events.length === 1 && !terminal) {
      problem(`run ${run.runId} sent ${events[0]?.name} but is still ${run.status}`);
    }
  }

  // Folders of this currency.
  const listed = await env.listDestination(`${PREFIX}/`, container);
  const folders = new Map<string, Map<string, number>>();
  const latestFiles: string[] = [];
  for (const blob of listed) {
    const m = RUN_FOLDER.exec(blob.path);
    if (m !== null) {
      if (m[2] !== currency) continue;
      const folder = blob.path.slice(0, blob.path.length - (m[5] ?? '').length - 1);
      const files = folders.get(folder) ?? new Map<string, number>();
      files.set(m[5] ?? '', blob.byteCount);
      folders.set(folder, files);
    } else if (LATEST.test(blob.path)) {
      if (LATEST.exec(blob.path)?.[2] === currency) latestFiles.push(blob.path);
    } else {
      problem(`a blob outside every run folder: ${blob.path}`);
    }
  }
  for (const [folder, files] of folders) {
    const runId = /run=([^/]+)$/.exec(folder)?.[1] ?? '';
    const run = byId.get(runId);
    const hasManifest = files.has('manifest.json');
    if (run === undefined) {
      problem(`folder ${folder} belongs to no run of the ledger`);
      continue;
    }
    if (hasManifest && run.status !== 'succeeded') {
      problem(`folder ${folder} has manifest.json but its run is reported "${run.status}" (${run.errorCode ?? ''})`);
    }
    if (!hasManifest && run.status === 'succeeded') {
      problem(`folder ${folder} has no manifest.json but its run is reported succeeded`);
    }
    if (run.path !== undefined && run.path !== folder) problem(`run ${runId} records path ${run.path}, not ${folder}`);
  }

  for (const run of runs.filter((r) => r.status === 'succeeded')) {
    const lost = await verifySucceeded(env, run, folders.get(run.path ?? '') ?? new Map(), container, problem);
    report.dataLost += lost.lost;
    report.blobsVerified += lost.verified;
  }

  // Each series: success expected, latest.json at the newest succeeded run.
  for (const period of periods) {
    const series = runs.filter((r) => r.billingPeriod === period);
    const succeeded = series.filter((r) => r.status === 'succeeded');
    if ((expectation.expectSuccess ?? true) && succeeded.length === 0) {
      report.dataLost++;
      problem(
        `${period}: no run succeeded (${series.map((r) => `${r.runId} ${r.status} ${r.errorCode ?? ''} ${r.error ?? ''}`).join('; ') || 'no run at all'})`,
      );
    }
    const newest = succeeded.sort((a, b) => (a.completedAt ?? '').localeCompare(b.completedAt ?? '')).at(-1);
    if (newest !== undefined) {
      const latestPath = `${PREFIX}/billingMonth=${newest.billingMonth}/currency=${currency}/attributeSet=${newest.attributeSet}/latest.json`;
      try {
        const latest = JSON.parse((await env.downloadDestination(latestPath, container)).toString('utf8')) as {
          runId?: string;
        };
        if (latest.runId !== newest.runId) problem(`${period}: latest.json names ${latest.runId}, not ${newest.runId}`);
      } catch (error) {
        problem(`${period}: latest.json of the newest succeeded run is unreadable (${String(error)})`);
      }
    }
  }

  // Graph exports: every export must belong to a run (its operation recorded).
  const operations = env.emulator
    .operations()
    .filter((op) => op.currency === currency && periods.includes(op.billingPeriod));
  report.graphExports = operations.length;
  const owned = (id: string) => runs.some((r) => r.operationId === id || (r.operationUrl ?? '').includes(id));
  report.orphanExports = operations.filter((op) => !owned(op.id)).length;
  if (report.orphanExports > (expectation.allowedOrphanExports ?? 0)) {
    problem(
      `${report.orphanExports} Graph export(s) that no run owns (a second export per series); allowed ${expectation.allowedOrphanExports ?? 0}`,
    );
  }
  return report;
}

async function verifySucceeded(
  env: FaultEnv,
  run: RunRecord,
  files: Map<string, number>,
  container: string | undefined,
  problem: (text: string) => void,
): Promise<{ lost: number; verified: number }> {
  let lost = 0;
  let verified = 0;
  const folder = run.path ?? '';
  const blobs = await env.ledger.listBlobs(run.runId);
  let manifest: { blobCount?: number; blobs?: Array<{ name: string; byteCount: number; contentMd5?: string }> } = {};
  try {
    manifest = JSON.parse((await env.downloadDestination(`${folder}/manifest.json`, container)).toString('utf8'));
  } catch (error) {
    problem(`run ${run.runId}: manifest.json unreadable (${String(error)})`);
    return { lost: 1, verified };
  }
  const listedNames = (manifest.blobs ?? []).map((b) => b.name).sort();
  const ledgerNames = blobs.map((b) => b.name).sort();
  if (JSON.stringify(listedNames) !== JSON.stringify(ledgerNames)) {
    problem(`run ${run.runId}: manifest.json lists ${listedNames.length} blobs, the ledger ${ledgerNames.length}`);
  }
  const inFolder = [...files.keys()].filter((f) => f !== 'manifest.json').sort();
  if (JSON.stringify(inFolder) !== JSON.stringify(listedNames)) {
    problem(
      `run ${run.runId}: the folder holds [${inFolder.join(', ')}], manifest.json lists [${listedNames.join(', ')}]`,
    );
  }
  for (const name of listedNames) {
    let copied: Buffer;
    try {
      copied = await env.downloadDestination(`${folder}/${name}`, container);
    } catch {
      lost++;
      problem(`run ${run.runId}: ${name} is listed but missing`);
      continue;
    }
    const source = await env.downloadSource(run.rootDirectory ?? '', name);
    const listedMd5 = manifest.blobs?.find((b) => b.name === name)?.contentMd5;
    if (listedMd5 !== undefined && listedMd5 !== createHash('md5').update(copied).digest('base64')) {
      problem(`run ${run.runId}: manifest.json gives ${name} a contentMd5 that is not the MD5 of its bytes`);
    }
    if (!copied.equals(source)) {
      lost++;
      problem(`run ${run.runId}: ${name} differs from the export blob (${copied.length} vs ${source.length} bytes)`);
    } else {
      verified++;
    }
  }
  return { lost, verified };
}

/** Every text the app left behind, for the secret scan. */
async function collectTexts(env: FaultEnv): Promise<Array<[string, string]>> {
  const texts: Array<[string, string]> = [];
  for (const log of env.logs) texts.push([`log of ${log.host}/${log.fn}`, log.line]);
  const runs = await env.ledger.listRuns({ limit: 5000 });
  for (const run of runs) {
    texts.push([`ledger run ${run.runId}`, JSON.stringify(run)]);
    texts.push([`ledger blobs of ${run.runId}`, JSON.stringify(await env.ledger.listBlobs(run.runId))]);
  }
  texts.push(['rejected messages', JSON.stringify(await env.ledger.listRejectedMessages(5000))]);
  for (const container of env.containers) {
    for (const blob of await env.listDestination('', container)) {
      texts.push([`blob name ${container}/${blob.path}`, blob.path]);
      if (blob.path.endsWith('.json')) {
        texts.push([
          `${container}/${blob.path}`,
          (await env.downloadDestination(blob.path, container)).toString('utf8'),
        ]);
      }
    }
  }
  for (const body of env.ingestion.rawBodies) texts.push(['telemetry body', body]);
  return texts;
}

/**
 * Scans every log line, ledger row, rejected message, destination JSON blob (and every blob name) and
 * telemetry body for `sig=`, bearer tokens, the emulator token, the storage keys and the given SAS tokens.
 * Returns the problems (empty when clean) and how many texts were scanned.
 */
export async function scanForSecrets(
  env: FaultEnv,
  sasTokens: string[] = [],
): Promise<{ scanned: number; problems: string[] }> {
  const texts = await collectTexts(env);
  const signatures = sasTokens.map((t) => new URLSearchParams(t).get('sig') ?? '').filter((s) => s.length > 20);
  const forbidden: Array<[string | RegExp, string]> = [
    ['sig=', 'a SAS sig= parameter'],
    [/sig%3D/i, 'a URL-encoded SAS sig= parameter'],
    // "Bearer [REDACTED]" is the redaction at work (a hostile input that carried one): fine.
    [/Bearer\s+(?!\[REDACTED\])\S/, 'a bearer token'],
    [EMULATOR_DEV_TOKEN, 'the emulator development token'],
    [MS_BILLING_ACCOUNT.key, 'the export storage account key'],
    [PARTNER_DEST_ACCOUNT.key, 'the destination account key'],
    [DEV_STORE_ACCOUNT.key, 'the host storage account key'],
    ...signatures.flatMap(
      (sig): Array<[string, string]> => [
        [sig, 'a SAS signature'],
        [encodeURIComponent(sig), 'a URL-encoded SAS signature'],
      ],
    ),
  ];
  const problems: string[] = [];
  for (const [where, text] of texts) {
    for (const [secret, what] of forbidden) {
      const found = typeof secret === 'string' ? text.includes(secret) : secret.test(text);
      if (found) problems.push(`${what} in ${where}: ${text.slice(0, 200)}`);
    }
  }
  return { scanned: texts.length, problems };
}

/** A short human summary of a report for assertion messages. */
export function describeReport(report: InvariantReport): string {
  const { problems, ...counts } = report;
  return `${JSON.stringify(counts)}${problems.length === 0 ? '' : `\n- ${problems.join('\n- ')}`}`;
}
