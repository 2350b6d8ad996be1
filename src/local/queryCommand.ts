import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import type { ContainerClient } from '@azure/storage-blob';
import type * as DuckDb from '@duckdb/node-api';
import { storageErrorInfo } from '../adapters/storage/clients';
import { type Config, loadConfig } from '../config';
import { ExportError } from '../errors';
import { type CommandSpec, formatHelp, parseCommandLine, stringFlag, switchFlag, usageError } from './commandLine';
import {
  allViewNames,
  type CurrentData,
  createViewsSql,
  currentData,
  datasetView,
  FOCUS_VIEW,
  type ListedPart,
  manifestPaths,
  QUERY_EXAMPLE,
  viewFiles,
} from './curatedViews';
import {
  CURATED_FOLDERS,
  type DestinationFile,
  downloadFiles,
  formatBytes,
  localPathFor,
  readError,
} from './destinationFiles';
import { defaultAzuriteLocation } from './embedded';
import { openDestination } from './filesCommand';
import { readLocalSettings } from './settings';
import { installShutdown } from './shutdown';

/**
 * `query "SQL"`: DuckDB SQL over the current curated data of the destination (SPEC section 9), with one view per
 * dataset and `focus_costs`. The current parts (those each series' manifest.json names, see curatedViews.ts) are
 * downloaded to a local cache (`.azurite/query-cache/`, a part already there with the same ETag is reused) and the
 * views read those files by name. DuckDB is loaded by this command only, when it runs SQL.
 */

/** Characters shown per column in the table. */
const CELL_WIDTH = 30;
/** Rows shown in the table. */
const TABLE_ROWS = 100;

/** The command's description: its --help text and its flags (commandLine.ts). */
export const QUERY_COMMAND: CommandSpec = {
  name: 'query',
  summary: 'DuckDB SQL over the current curated data: a view per dataset and focus_costs',
  arguments: '"SQL" [flags]',
  description: `Runs DuckDB SQL over the current curated data (typed Parquet and FOCUS 1.2) of the destination. Views:

  unbilled_usage, unbilled_reconciliation, billed_usage, billed_reconciliation, billed_aggregated_usage
                   the curated rows of each dataset (curated/…), every month, currency, invoice and
                   attribute set: only the version each series' manifest.json names, so each row once
  focus_costs      the FOCUS 1.2 rows of every dataset (focus/…), by column name (BilledCost,
                   BillingCurrency, ChargeCategory, x_CustomerName, x_SourceRunId, …)

A view exists once its dataset has curated data. Sum money only within one currency. Without --json the
result is a table (columns cut at ${CELL_WIDTH} characters, the first ${TABLE_ROWS} rows).

The current parts are downloaded to .azurite/query-cache/ (reused while their ETag is unchanged). DuckDB runs
with 2 threads, a 1 GB memory limit and at most 2 GB of spill files in the system's temporary folder;
extensions are never downloaded. SQL that does not run exits 2 and lists the views; no curated data yet, or
a destination that fails, exits 1.`,
  flags: [
    {
      name: 'json',
      description:
        'one JSON object as the last line: {"columns":[{"name","type"}],"rows":[{…}]};\nDECIMAL, BIGINT and timestamps as strings (exact), every row',
    },
    {
      name: 'destination',
      value: 'DIR|URL',
      description: [
        'DIR: a local copy made by "files --download DIR" (nothing is read from storage);',
        "URL: the destination's blob endpoint, https://{account}.blob.core.windows.net",
        '[/container], read with your sign-in (e.g. "az login"; Storage Blob Data Reader).',
        'Default: the destination of your settings, else the embedded Azurite of .azurite/',
      ].join('\n'),
    },
  ],
  maxPositionals: 1,
  examples: [
    `npm run cli -- query "${QUERY_EXAMPLE}"`,
    'npm run cli -- query "SELECT count(*) FROM unbilled_usage" --json',
    'npm run cli -- query "DESCRIBE focus_costs"',
  ],
  exitCodes: `Exit codes: 0 the query ran; 1 no curated data yet, or the destination failed; 2 bad flags, settings
or SQL that does not run; 3 .azurite/ is busy; 130 / 143 interrupted (Ctrl-C / SIGTERM).`,
};

export interface QueryFlags {
  sql: string;
  json: boolean;
  destination: { kind: 'folder'; path: string } | { kind: 'url'; url: string; container?: string } | undefined;
  help: boolean;
}

const DESTINATION_ACCEPTED =
  'a folder made by "files --download DIR", or https://{account}.blob.core.windows.net[/container]';

/** Reads the flags; every problem names what was wrong and what is accepted (USAGE_INVALID, exit code 2). */
export function parseQueryFlags(argv: string[]): QueryFlags {
  // Extra arguments are counted here rather than by the parser: an unquoted SQL is the usual cause, and the
  // message says so.
  const parsed = parseCommandLine({ ...QUERY_COMMAND, maxPositionals: Number.MAX_SAFE_INTEGER }, argv);
  if (parsed.help) return { sql: '', json: false, destination: undefined, help: true };
  const { positionals } = parsed;
  const sqlAccepted = 'the SQL as one argument in quotes, e.g. query "SELECT 1"';
  if (positionals.length === 0 || positionals.every((text) => text.trim() === '')) {
    throw usageError(QUERY_COMMAND, 'no SQL given', sqlAccepted);
  }
  if (positionals.length > 1) {
    throw usageError(
      QUERY_COMMAND,
      `${positionals.length} arguments given ("${positionals[1]}" …); put the whole SQL in one pair of quotes`,
      sqlAccepted,
    );
  }
  let destination: QueryFlags['destination'];
  const given = stringFlag(parsed, 'destination');
  if (given !== undefined) {
    if (given.trim() === '')
      throw usageError(QUERY_COMMAND, '--destination needs a folder or a URL', DESTINATION_ACCEPTED);
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(given)) {
      let url: URL;
      try {
        url = new URL(given);
      } catch {
        throw usageError(QUERY_COMMAND, `--destination: "${given}" is not a URL`, DESTINATION_ACCEPTED);
      }
      // A SAS (or any query string) on a command line ends up in the shell's history: never accepted there.
      if (url.search !== '' || url.username !== '' || url.password !== '') {
        throw usageError(
          QUERY_COMMAND,
          '--destination: a URL with a query string or credentials is refused (a SAS belongs in DESTINATION_STORAGE, not on a command line)',
          'a URL without a query string or credentials',
        );
      }
      if (url.protocol !== 'https:') {
        throw usageError(QUERY_COMMAND, `--destination: "${url.origin}" must use https`, DESTINATION_ACCEPTED);
      }
      const segments = url.pathname.split('/').filter((segment) => segment !== '');
      if (segments.length > 1) {
        throw usageError(
          QUERY_COMMAND,
          `--destination: "${url.origin}${url.pathname}" names more than a container`,
          'a blob endpoint, optionally with one container, e.g. https://{account}.blob.core.windows.net/partner-billing',
        );
      }
      destination = { kind: 'url', url: url.origin, ...(segments[0] === undefined ? {} : { container: segments[0] }) };
    } else {
      const path = resolve(given);
      if (!existsSync(path) || !statSync(path).isDirectory()) {
        throw usageError(
          QUERY_COMMAND,
          `--destination: folder "${given}" does not exist (make one with "files --download ${given}")`,
          DESTINATION_ACCEPTED,
        );
      }
      destination = { kind: 'folder', path };
    }
  }
  return { sql: positionals[0] as string, json: switchFlag(parsed, 'json'), destination, help: false };
}

/** The result of the SQL's last statement. */
export interface QueryResult {
  columns: Array<{ name: string; type: string }>;
  /** Values as DuckDB's JSON conversion gives them: DECIMAL, BIGINT, HUGEINT, dates and timestamps as strings. */
  rows: unknown[][];
}

/** The SQL did not run (bad SQL, an unknown view or column): the user's input, exit code 2. */
export class QuerySqlError extends Error {
  override readonly name = 'QuerySqlError';
}

/** DuckDB's limits for the query command (a person's machine, one query at a time). */
export const QUERY_ENGINE = { threads: 2, memoryLimit: '1GB', maxTempDirectorySize: '2GB' } as const;

/**
 * Creates the views over their files and runs `sql` in an in-memory DuckDB (loaded here, on first use). An error of
 * the SQL itself is a QuerySqlError; one while creating the views (an unreadable part) is thrown as it is.
 */
export async function runQuery(views: Map<string, string[]>, sql: string, tempDirectory: string): Promise<QueryResult> {
  const { DuckDBInstance } = require('@duckdb/node-api') as typeof DuckDb;
  mkdirSync(tempDirectory, { recursive: true });
  const instance = await DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
    threads: String(QUERY_ENGINE.threads),
    memory_limit: QUERY_ENGINE.memoryLimit,
    temp_directory: tempDirectory,
    max_temp_directory_size: QUERY_ENGINE.maxTempDirectorySize,
  });
  const connection = await instance.connect();
  try {
    // Timestamps print in UTC whatever the machine's zone (the data is UTC).
    await connection.run("SET TimeZone = 'UTC'");
    if (views.size > 0) await connection.run(createViewsSql(views));
    let reader: DuckDb.DuckDBResultReader;
    try {
      reader = await connection.runAndReadAll(sql);
    } catch (error) {
      throw new QuerySqlError(error instanceof Error ? error.message : String(error));
    }
    const names = reader.columnNames();
    const types = reader.columnTypes();
    return {
      columns: names.map((name, index) => ({ name, type: String(types[index]) })),
      rows: reader.getRowsJson() as unknown[][],
    };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

const NUMERIC =
  /^(DECIMAL|TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE)/;

function cellText(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.replace(/[\r\n\t]+/g, ' ');
}

function fit(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1).trimEnd()}…`;
}

/** The result as a fixed-width table: columns cut at CELL_WIDTH characters, numbers right-aligned, TABLE_ROWS rows. */
export function formatTable(result: QueryResult): string[] {
  const shown = result.rows.slice(0, TABLE_ROWS).map((row) => row.map((value) => fit(cellText(value), CELL_WIDTH)));
  const headers = result.columns.map((column) => fit(column.name, CELL_WIDTH));
  const widths = headers.map((header, index) =>
    Math.max(header.length, ...shown.map((row) => (row[index] ?? '').length)),
  );
  const right = result.columns.map((column) => NUMERIC.test(column.type));
  const line = (cells: string[]) =>
    cells
      .map((cell, index) => (right[index] ? cell.padStart(widths[index] ?? 0) : cell.padEnd(widths[index] ?? 0)))
      .join('  ')
      .trimEnd();
  const lines = [line(headers), widths.map((width) => '-'.repeat(width)).join('  ')];
  for (const row of shown) lines.push(line(row));
  const count = result.rows.length;
  lines.push(
    count > TABLE_ROWS
      ? `(${count} rows, the first ${TABLE_ROWS} shown: add LIMIT, or --json for every row)`
      : `(${count} row${count === 1 ? '' : 's'})`,
  );
  return lines;
}

/** The --json line: rows as objects keyed by column name. */
export function formatJson(result: QueryResult): string {
  const rows = result.rows.map((row) =>
    Object.fromEntries(result.columns.map((column, index) => [column.name, row[index]])),
  );
  return JSON.stringify({ columns: result.columns, rows });
}

/** What the views hold, for the SQL error and the start of a query: `unbilled_usage (80 rows), …`. */
export function describeViews(data: CurrentData): string {
  const rowsOf = (view: string) =>
    data.series
      .filter((series) =>
        view === FOCUS_VIEW
          ? series.kind === 'focus'
          : series.kind === 'curated' && datasetView(series.dataset) === view,
      )
      .reduce((sum, series) => sum + series.rowCount, 0);
  const present = allViewNames().filter((view) =>
    data.series.some((series) =>
      view === FOCUS_VIEW ? series.kind === 'focus' : series.kind === 'curated' && datasetView(series.dataset) === view,
    ),
  );
  const absent = allViewNames().filter((view) => !present.includes(view));
  return `Views: ${present.map((view) => `${view} (${rowsOf(view)} rows)`).join(', ')}${
    absent.length > 0 ? `. No curated data yet for: ${absent.join(', ')}` : ''
  }.`;
}

export const NO_DATA_HINT =
  'Get some with "npm start" (or "npm run cli -- run --datasets unbilledUsage,unbilledReconciliation"), with EXPORT_CURATION on (the default), then query again.';

/** The local copy's files under curated/ and focus/ (paths with "/", as in the container). */
function listFolder(root: string): ListedPart[] {
  const found: ListedPart[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && !entry.name.includes('.partial-')) {
        found.push({ path: relative(root, path).split(sep).join('/'), size: statSync(path).size });
      }
    }
  };
  for (const kind of CURATED_FOLDERS) if (existsSync(join(root, kind))) walk(join(root, kind));
  return found;
}

function readJsonFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** Blobs of curated/ and focus/ with their ETags. */
async function listContainer(container: ContainerClient): Promise<ListedPart[]> {
  const found: ListedPart[] = [];
  for (const kind of CURATED_FOLDERS) {
    try {
      for await (const blob of container.listBlobsFlat({ prefix: `${kind}/` })) {
        // A name that would not stay inside the cache folder is never downloaded (nor part of a current version).
        if (!isSafeBlobPath(blob.name)) continue;
        found.push({ path: blob.name, size: blob.properties.contentLength ?? 0, etag: blob.properties.etag });
      }
    } catch (error) {
      // A container not created yet holds nothing.
      if (storageErrorInfo(error).code === 'ContainerNotFound') return [];
      throw readError(error, `Listing "${kind}/" in the destination container`);
    }
  }
  return found;
}

function isSafeBlobPath(path: string): boolean {
  try {
    localPathFor(tmpdir(), path);
    return true;
  } catch {
    return false;
  }
}

/** The cache's record of the ETag each cached file was downloaded with. */
type CacheIndex = Record<string, string>;

function asDestinationFile(part: ListedPart): DestinationFile {
  return {
    path: part.path,
    size: part.size,
    contentType: null,
    lastModified: null,
    kind: part.path.startsWith('focus/') ? 'focus' : 'curated',
    dataset: null,
    series: null,
    runId: null,
  };
}

/**
 * Brings `parts` into the cache folder (at their container paths): a file already there with the same size and the
 * ETag it was downloaded with is reused; others are downloaded (written beside and renamed, see downloadFiles).
 * With `prune`, files under curated/ and focus/ of the cache that are not among `parts` are removed.
 */
export async function syncCache(
  container: ContainerClient,
  cacheRoot: string,
  parts: ListedPart[],
  prune: boolean,
): Promise<{ downloaded: number; reused: number; bytes: number }> {
  mkdirSync(cacheRoot, { recursive: true });
  const indexPath = join(cacheRoot, 'index.json');
  const index = (readJsonFile(indexPath) ?? {}) as CacheIndex;
  const stale = parts.filter((part) => {
    const local = localPathFor(cacheRoot, part.path);
    const fresh =
      existsSync(local) &&
      statSync(local).size === part.size &&
      part.etag !== undefined &&
      index[part.path] === part.etag;
    if (!fresh) rmSync(local, { force: true });
    return !fresh;
  });
  if (stale.length > 0) {
    const results = await downloadFiles(container, stale.map(asDestinationFile), cacheRoot);
    const refused = results.find((result) => result.action === 'refused');
    if (refused !== undefined) throw new ExportError('DESTINATION_UNAVAILABLE', refused.reason ?? refused.path);
    for (const part of stale) if (part.etag !== undefined) index[part.path] = part.etag;
  }
  if (prune) {
    const keep = new Set(parts.map((part) => part.path));
    for (const file of listFolder(cacheRoot)) {
      if (!keep.has(file.path)) {
        rmSync(localPathFor(cacheRoot, file.path), { force: true });
        delete index[file.path];
      }
    }
  }
  // Replaced whole (written beside, then renamed): a query stopped half-way leaves the previous index.
  const partial = `${indexPath}.partial-${process.pid}`;
  writeFileSync(partial, JSON.stringify(index));
  renameSync(partial, indexPath);
  return {
    downloaded: stale.length,
    reused: parts.length - stale.length,
    bytes: stale.reduce((sum, part) => sum + part.size, 0),
  };
}

/** The cache folder of a destination: one per destination container, `local` for the embedded Azurite. */
export function cacheFolder(dataFolder: string, containerUrl: string | undefined): string {
  if (containerUrl === undefined) return join(dataFolder, 'query-cache', 'local');
  const clean = new URL(containerUrl);
  clean.search = '';
  return join(dataFolder, 'query-cache', createHash('sha256').update(clean.toString()).digest('hex').slice(0, 16));
}

type Out = (line: string) => void;

/** The current data of a local copy: its views over its own files. */
function fromFolder(config: Pick<Config, 'destination'>, root: string) {
  const listing = listFolder(root);
  const manifests = new Map(manifestPaths(listing).map((path) => [path, readJsonFile(join(root, ...path.split('/')))]));
  const data = currentData(config, listing, manifests);
  return { data, views: viewFiles(data, (part) => join(root, ...part.path.split('/'))) };
}

/** The current data of a destination container, its parts brought into the cache first. */
async function fromContainer(
  config: Pick<Config, 'destination'>,
  container: ContainerClient,
  cacheRoot: string,
  log: Out,
) {
  const listing = await listContainer(container);
  const manifestParts = listing.filter((part) => manifestPaths([part]).length === 1);
  // Manifests are small and replaced in place: fetched whenever their ETag changed.
  const fetched = await syncCache(container, cacheRoot, manifestParts, false);
  const manifests = new Map(
    manifestParts.map((part) => [part.path, readJsonFile(localPathFor(cacheRoot, part.path))] as const),
  );
  const data = currentData(config, listing, manifests);
  const parts = data.series.flatMap((series) => series.parts);
  const synced = await syncCache(container, cacheRoot, [...manifestParts, ...parts], true);
  if (parts.length > 0) {
    const downloaded = fetched.downloaded + synced.downloaded;
    log(
      `Current data: ${data.series.length} series (${manifestParts.length} manifest.json, ${parts.length} parts); ${downloaded} file(s) downloaded (${formatBytes(fetched.bytes + synced.bytes)}), ${manifestParts.length + parts.length - downloaded} reused from ${relative(process.cwd(), cacheRoot) || cacheRoot}.`,
    );
  }
  return { data, views: viewFiles(data, (part) => localPathFor(cacheRoot, part.path)) };
}

/** Runs `query`; returns the exit code (errors of the destination are thrown for the command line's handler). */
export async function commandQuery(
  argv: string[],
  out: { stdout: Out; stderr: Out } = {
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
  },
): Promise<number> {
  const flags = parseQueryFlags(argv);
  if (flags.help) {
    out.stdout(formatHelp(QUERY_COMMAND));
    return 0;
  }
  const settings = readLocalSettings().values;
  const destination = flags.destination;
  if (destination?.kind === 'url') {
    for (const key of Object.keys(settings)) if (key.startsWith('DESTINATION_STORAGE')) delete settings[key];
    settings['DESTINATION_STORAGE__blobServiceUri'] = destination.url;
    if (destination.container !== undefined) settings['DESTINATION_CONTAINER'] = destination.container;
  }
  const shutdown = installShutdown(out.stderr);
  try {
    let found: { data: CurrentData; views: Map<string, string[]> };
    let where: string;
    if (destination?.kind === 'folder') {
      // Only the folder names of the settings matter for a local copy.
      const config = loadConfig({
        ...settings,
        AzureWebJobsStorage: 'UseDevelopmentStorage=true',
        DESTINATION_STORAGE: 'UseDevelopmentStorage=true',
        GRAPH_BASE_URL: settings['GRAPH_BASE_URL'] ?? 'https://127.0.0.1:1/v1.0',
        EXPORT_CURRENCIES: settings['EXPORT_CURRENCIES'] ?? 'USD',
      });
      out.stderr(`Local copy ${destination.path}.`);
      found = fromFolder(config, destination.path);
      where = `the local copy ${destination.path}`;
    } else {
      const { config, container, embedded } = await openDestination(settings, 'query', shutdown, out.stderr);
      const cacheRoot = cacheFolder(defaultAzuriteLocation(), embedded === undefined ? container.url : undefined);
      found = await fromContainer(config, container, cacheRoot, out.stderr);
      where = `container "${config.destination.container}"`;
    }
    for (const warning of found.data.warnings) out.stderr(`Warning: ${warning}`);
    if (found.views.size === 0) {
      out.stderr(`No curated data in ${where} yet: nothing to query. ${NO_DATA_HINT}`);
      return 1;
    }
    let result: QueryResult;
    const spill = mkdtempSync(join(tmpdir(), 'csp-query-'));
    try {
      result = await runQuery(found.views, flags.sql, spill);
    } catch (error) {
      if (!(error instanceof QuerySqlError)) throw error;
      out.stderr(
        `query: the SQL did not run: ${error.message.trim()}\n${describeViews(found.data)}\nSee "query --help" for an example.`,
      );
      return 2;
    } finally {
      rmSync(spill, { recursive: true, force: true });
    }
    if (flags.json) out.stdout(formatJson(result));
    else for (const line of formatTable(result)) out.stdout(line);
    return 0;
  } finally {
    if (!shutdown.stopping) {
      await shutdown.stopAll();
      shutdown.dispose();
    }
  }
}
