import type { ContainerClient } from '@azure/storage-blob';
import { destinationContainerClient } from '../composition';
import { type Config, DATASET_IDS, type DatasetId, loadConfig, parseDatasets } from '../config';
import { ExportError } from '../errors';
import { isRunId } from '../pipeline/layout';
import { PARTNER_DEST_ACCOUNT } from './azurite';
import { type CommandSpec, formatHelp, parseCommandLine, stringFlag, switchFlag, usageError } from './commandLine';
import {
  type DestinationFile,
  type DownloadedFile,
  downloadFiles,
  type FileSelection,
  formatBytes,
  listDestinationFiles,
} from './destinationFiles';
import { defaultAzuriteLocation, type EmbeddedServices, startEmbeddedServices } from './embedded';
import { hasSetting, readLocalSettings } from './settings';
import { installShutdown, type Shutdown } from './shutdown';

/**
 * `files`: lists and downloads what landed in the destination container (raw run folders, `curated/`,
 * `focus/`), whatever the destination is. Without DESTINATION_STORAGE it reads the embedded Azurite of
 * `.azurite/`: the running command's when one owns the folder (as `runs` does), else its own.
 */

/** The command's description: its --help text and its flags (commandLine.ts). */
export const FILES_COMMAND: CommandSpec = {
  name: 'files',
  summary: 'what landed in the destination (raw, curated/, focus/): lists, or downloads with --download DIR',
  arguments: '[--run ID | --all] [--dataset D] [--download DIR] [--json]',
  description: `Lists (and downloads) what landed in the destination container: the raw run folders (data blobs,
manifest.json, latest.json) and whatever lies under curated/ and focus/. Without a flag: the current
data, each series' latest.json and the run folder it names, grouped by dataset and series, with sizes;
plus curated/ and focus/.`,
  flags: [
    {
      name: 'run',
      value: 'ID',
      description: 'one run\'s folder (a run id as "runs" prints it, e.g. 20261207T060000123Z-9f3a1c2b)',
    },
    { name: 'all', description: 'every run folder, not only the current ones' },
    {
      name: 'dataset',
      value: 'D',
      description: `only these datasets (comma-separated): ${DATASET_IDS.slice(0, 2).join(', ')},\n${DATASET_IDS.slice(2).join(', ')}`,
    },
    {
      name: 'download',
      value: 'DIR',
      description:
        'writes the listed files under DIR, keeping their container paths; a file already\nthere with the same size is skipped',
    },
    {
      name: 'json',
      description: [
        'one JSON object as the last line: {"container","files":[{"path","size","contentType",',
        '"lastModified","kind","dataset","series","runId"}]} (with --download each file also',
        'has "localPath" and "download": written, skipped or refused)',
      ].join('\n'),
    },
  ],
  examples: [
    'npm run cli -- files',
    'npm run cli -- files --dataset unbilledUsage --download ./partner-billing',
    'npm run cli -- files --run 20261207T060000123Z-9f3a1c2b --json',
  ],
  notes: `The destination is DESTINATION_STORAGE (a connection string) or DESTINATION_STORAGE__blobServiceUri (your
sign-in, e.g. "az login", needs Storage Blob Data Reader on it); without either, the embedded Azurite of
.azurite/ (the one of a running "npm start" if there is one).`,
  exitCodes: `Exit codes: 0 listed or downloaded; 1 the destination failed or a file was refused; 2 bad flags or
settings; 3 .azurite/ is busy; 130 / 143 interrupted (Ctrl-C / SIGTERM).`,
};

export interface FilesFlags {
  selection: FileSelection;
  download: string | undefined;
  json: boolean;
  help: boolean;
}

/** Reads the flags; every problem names the flag and what is accepted (USAGE_INVALID, exit code 2). */
export function parseFilesFlags(argv: string[]): FilesFlags {
  const parsed = parseCommandLine(FILES_COMMAND, argv);
  const values = {
    run: stringFlag(parsed, 'run'),
    all: switchFlag(parsed, 'all'),
    dataset: stringFlag(parsed, 'dataset'),
    download: stringFlag(parsed, 'download'),
    json: switchFlag(parsed, 'json'),
    help: parsed.help,
  };
  if (values.help === true) {
    return { selection: { mode: 'current' }, download: undefined, json: false, help: true };
  }
  const problems: string[] = [];
  let datasets: DatasetId[] | undefined;
  if (values.dataset !== undefined) datasets = parseDatasets(values.dataset, '--dataset', problems);
  if (values.run !== undefined && !isRunId(values.run)) {
    problems.push(
      `--run: "${values.run}" is not a run id; a run id as "runs" prints it is accepted, e.g. 20261207T060000123Z-9f3a1c2b`,
    );
  }
  if (values.run !== undefined && values.all === true) problems.push('--run and --all: give one of the two');
  if (values.download !== undefined && values.download.trim() === '') {
    problems.push('--download: a folder is accepted, e.g. --download ./partner-billing');
  }
  if (problems.length > 0) throw usageError(FILES_COMMAND, problems.join('; '));
  const selection: FileSelection =
    values.run !== undefined
      ? { mode: 'run', runId: values.run, datasets }
      : { mode: values.all === true ? 'all' : 'current', datasets };
  return { selection, download: values.download, json: values.json === true, help: false };
}

/** Where the files are, for the header line: never a key or a SAS. */
function describeDestination(
  url: string,
  embedded: EmbeddedServices | undefined,
  container: string,
  destinationIsEmbedded: boolean,
): string {
  if (embedded?.azurite !== undefined && destinationIsEmbedded) {
    const whose =
      embedded.attachedTo === undefined
        ? 'the embedded Azurite of .azurite/'
        : `the Azurite of the running "${embedded.attachedTo.command}" command (pid ${embedded.attachedTo.pid})`;
    return `Container "${container}" of account "${PARTNER_DEST_ACCOUNT.name}" in ${whose} (${embedded.azurite.blobEndpoint}/${PARTNER_DEST_ACCOUNT.name}).`;
  }
  const clean = new URL(url);
  clean.search = '';
  return `Container ${clean.toString()}.`;
}

/** The text listing: files grouped by dataset and series (raw), then by top folder (curated, focus). */
export function formatListing(files: DestinationFile[], selection: FileSelection): string[] {
  const lines: string[] = [];
  const raw = files.filter((file) => file.kind === 'raw');
  const what =
    selection.mode === 'current'
      ? "Current data (each series' latest.json and the run folder it names)"
      : selection.mode === 'all'
        ? 'Every run folder'
        : `Run ${selection.runId}`;
  lines.push(`${what}:`);
  if (raw.length === 0) lines.push('  (no raw files)');
  const byDataset = new Map<string, DestinationFile[]>();
  for (const file of raw) {
    const key = file.dataset ?? '?';
    byDataset.set(key, [...(byDataset.get(key) ?? []), file]);
  }
  for (const [dataset, datasetFiles] of byDataset) {
    lines.push(`  ${dataset}`);
    const bySeries = new Map<string, DestinationFile[]>();
    for (const file of datasetFiles) {
      const key = file.series ?? '?';
      bySeries.set(key, [...(bySeries.get(key) ?? []), file]);
    }
    for (const [series, seriesFiles] of bySeries) {
      const bytes = seriesFiles.reduce((sum, file) => sum + file.size, 0);
      lines.push(`    ${series}/  (${seriesFiles.length} files, ${formatBytes(bytes)})`);
      for (const file of seriesFiles) {
        lines.push(`      ${formatBytes(file.size).padStart(10)}  ${file.path.slice(series.length + 1)}`);
      }
    }
  }
  if (selection.mode !== 'run') {
    for (const kind of ['curated', 'focus'] as const) {
      const these = files.filter((file) => file.kind === kind);
      const bytes = these.reduce((sum, file) => sum + file.size, 0);
      lines.push(
        these.length === 0 ? `${kind}/: (nothing yet)` : `${kind}/  (${these.length} files, ${formatBytes(bytes)})`,
      );
      for (const file of these) lines.push(`      ${formatBytes(file.size).padStart(10)}  ${file.path}`);
    }
  }
  const total = files.reduce((sum, file) => sum + file.size, 0);
  lines.push(`${files.length} files, ${formatBytes(total)} (${total} bytes).`);
  return lines;
}

type Out = (line: string) => void;

/** The destination container a reading command (files, query) reads, and what it says about it. */
export interface OpenedDestination {
  config: Config;
  container: ContainerClient;
  /** The embedded services started (or attached to) for it; undefined for a configured destination. */
  embedded: EmbeddedServices | undefined;
}

/**
 * Opens the destination for reading: DESTINATION_STORAGE (or its identity-based form) as it is, else the embedded
 * Azurite of `.azurite/` (the running command's when one owns the folder, else its own, stopped by `shutdown`).
 * Settings only other commands need are filled with harmless placeholders when absent. Logs where the files are.
 */
export async function openDestination(
  values: Record<string, string | undefined>,
  command: string,
  shutdown: Shutdown,
  log: Out,
): Promise<OpenedDestination> {
  const destinationIsEmbedded = !hasSetting(values, 'DESTINATION_STORAGE');
  const settings = (filled: Record<string, string>): Record<string, string | undefined> => ({
    ...values,
    ...filled,
    AzureWebJobsStorage: hasSetting(values, 'AzureWebJobsStorage')
      ? values['AzureWebJobsStorage']
      : (filled['AzureWebJobsStorage'] ?? 'UseDevelopmentStorage=true'),
    GRAPH_BASE_URL: values['GRAPH_BASE_URL'] ?? 'https://127.0.0.1:1/v1.0',
    EXPORT_CURRENCIES: values['EXPORT_CURRENCIES'] ?? 'USD',
  });
  // Every setting is checked before Azurite starts (the embedded destination stands in as a placeholder).
  if (destinationIsEmbedded) loadConfig(settings({ DESTINATION_STORAGE: 'UseDevelopmentStorage=true' }));
  const embedded = destinationIsEmbedded
    ? await shutdown.step(
        () =>
          startEmbeddedServices(values, {
            azuriteLocation: defaultAzuriteLocation(),
            withoutEmulator: true,
            attach: true,
            command,
            signal: shutdown.signal,
            log,
          }),
        (services) => () => services.stop(),
      )
    : undefined;
  const config = loadConfig(settings(embedded?.filled ?? {}));
  const container = destinationContainerClient(config);
  log(describeDestination(container.url, embedded, config.destination.container, destinationIsEmbedded));
  return { config, container, embedded };
}

/** Runs `files`; returns the exit code (errors are thrown for the command line's handler). */
export async function commandFiles(
  argv: string[],
  out: { stdout: Out; stderr: Out; progress?: NodeJS.WriteStream } = {
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
    progress: process.stderr,
  },
): Promise<number> {
  const flags = parseFilesFlags(argv);
  if (flags.help) {
    out.stdout(formatHelp(FILES_COMMAND));
    return 0;
  }
  const { values } = readLocalSettings();
  const shutdown = installShutdown(out.stderr);
  try {
    const { config, container } = await openDestination(values, 'files', shutdown, out.stderr);
    const warnings: string[] = [];
    const files = await listDestinationFiles(container, config, flags.selection, warnings);
    for (const warning of warnings) out.stderr(`Warning: ${warning}`);
    if (flags.selection.mode === 'run' && files.length === 0) {
      throw new ExportError(
        'RUN_NOT_FOUND',
        `No files of run ${flags.selection.runId} in container "${config.destination.container}"${flags.selection.datasets === undefined ? '' : ` for ${flags.selection.datasets.join(', ')}`}; "runs" lists the runs and their folders (a run that ended unchanged, noData or failed before copying has none).`,
      );
    }
    let downloaded: DownloadedFile[] | undefined;
    if (flags.download !== undefined) {
      const tty = out.progress?.isTTY === true ? out.progress : undefined;
      let shown = 0;
      downloaded = await downloadFiles(container, files, flags.download, (progress) => {
        // A line at most every 100 ms (progress comes with every chunk), and the last one.
        if (Date.now() - shown < 100 && progress.filesDone < progress.files) return;
        shown = Date.now();
        tty?.write(
          `\rDownloading ${progress.filesDone}/${progress.files} files, ${formatBytes(progress.bytesDone)} of ${formatBytes(progress.bytes)}   `,
        );
      });
      tty?.write('\n');
    }
    if (flags.json) {
      const rows = files.map((file, index) => {
        const result = downloaded?.[index];
        return result === undefined
          ? file
          : { ...file, localPath: result.localPath === '' ? null : result.localPath, download: result.action };
      });
      out.stdout(JSON.stringify({ container: config.destination.container, files: rows }));
    } else {
      for (const line of formatListing(files, flags.selection)) out.stdout(line);
    }
    if (downloaded !== undefined) {
      const written = downloaded.filter((file) => file.action === 'written');
      const skipped = downloaded.filter((file) => file.action === 'skipped');
      const refused = downloaded.filter((file) => file.action === 'refused');
      for (const file of refused) out.stderr(`Refused: ${file.reason}`);
      out.stderr(
        `Downloaded ${written.length} files (${formatBytes(written.reduce((sum, file) => sum + file.bytes, 0))}) into ${flags.download}; ${skipped.length} already there with the same size were skipped${refused.length > 0 ? `; ${refused.length} refused` : ''}.`,
      );
      return refused.length > 0 ? 1 : 0;
    }
    if (!flags.json && files.length > 0) {
      out.stderr('Download them with:  npm run cli -- files --download ./partner-billing   (add the same flags)');
    }
    return 0;
  } finally {
    if (!shutdown.stopping) {
      await shutdown.stopAll();
      shutdown.dispose();
    }
  }
}

/**
 * How to open the landed files, printed by `run` and `start` once their exports finished: the `files`
 * command, and, when the destination is the embedded Azurite and it keeps running (`start`), the local
 * account's name, key and blob endpoint (development values) for Azure Storage Explorer. Never for a
 * destination the user configured: its key is theirs.
 */
export function howToOpenFiles(options: {
  embedded: EmbeddedServices;
  env: Record<string, string | undefined>;
  /** Does the embedded Azurite keep running after this (start: yes; run: it stops with the command)? */
  keepsRunning: boolean;
}): string[] {
  const { embedded, env } = options;
  const lines = ['Open the files:  npm run cli -- files   (--download DIR to copy them here; --help for more)'];
  const azurite = embedded.azurite;
  if (azurite === undefined || env['DESTINATION_STORAGE'] !== embedded.filled['DESTINATION_STORAGE']) return lines;
  if (!options.keepsRunning) return lines;
  const name = PARTNER_DEST_ACCOUNT.name;
  lines.push(
    'Or attach Azure Storage Explorer while this command runs (development values of the local Azurite, not secrets; the port changes with each start):',
    `  account name   ${name}`,
    `  account key    ${azurite.accountKey(name)}`,
    `  blob endpoint  ${azurite.blobEndpoint}/${name}`,
    `  connection     DefaultEndpointsProtocol=http;AccountName=${name};AccountKey=${azurite.accountKey(name)};BlobEndpoint=${azurite.blobEndpoint}/${name};`,
  );
  return lines;
}
