/**
 * Shared pieces of `npm run bench`: statistics, the one results table, request classification of traced runs,
 * and the entry points of the built app read from package.json (so the bench measures whatever the build produces).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TracedRequest } from './requestTrace';

/** The repository root (this file is built to dist/test/bench/). */
export const ROOT = resolve(__dirname, '..', '..', '..');

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function fixed(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

export function round(value: number, digits = 4): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** One line of the results table. */
export interface ResultRow {
  /** Issue 9 item it belongs to. */
  item: string;
  figure: string;
  ours: string;
  baseline: string;
  ratio: string;
  target: string;
  /** true: target met; false: missed; undefined: information only. */
  met: boolean | undefined;
  /** Machine-readable values for the JSON line. */
  values: Record<string, number | string>;
}

export function renderTable(rows: readonly ResultRow[]): string {
  const header = ['#', 'figure', 'ours', 'baseline (same run)', 'ratio', 'target', 'met'];
  const cells = rows.map((row) => [
    row.item,
    row.figure,
    row.ours,
    row.baseline,
    row.ratio,
    row.target,
    row.met === undefined ? 'info' : row.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((cell, column) => Math.max(cell.length, ...cells.map((row) => (row[column] ?? '').length)));
  const line = (values: string[]): string =>
    `| ${values.map((value, column) => value.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`;
  return [line(header), rule, ...cells.map(line)].join('\n');
}

/** The `bin` script of package.json (the command line), absolute. */
export function cliEntry(): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    bin?: string | Record<string, string>;
  };
  const bin = typeof pkg.bin === 'string' ? pkg.bin : Object.values(pkg.bin ?? {})[0];
  if (bin === undefined) throw new Error('package.json has no "bin": the bench cannot find the command line.');
  return join(ROOT, bin);
}

/**
 * The files the Functions host loads: package.json `main`, with `{a,b}` alternatives and a `*` in the file name
 * expanded as the host does (e.g. `dist/src/{index.js,functions/*.js}`).
 */
export function functionsEntryFiles(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main?: string };
  const main = pkg.main ?? 'index.js';
  const braces = /^(.*)\{([^}]*)\}(.*)$/.exec(main);
  const patterns = braces === null ? [main] : braces[2]!.split(',').map((part) => `${braces[1]}${part}${braces[3]}`);
  const files: string[] = [];
  for (const pattern of patterns) {
    const absolute = join(ROOT, pattern);
    if (!absolute.includes('*')) {
      if (existsSync(absolute)) files.push(absolute);
      continue;
    }
    const folder = absolute.slice(0, absolute.lastIndexOf('/'));
    const name = absolute.slice(absolute.lastIndexOf('/') + 1);
    const matcher = new RegExp(`^${name.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
    if (!existsSync(folder)) continue;
    for (const entry of readdirSync(folder).sort()) if (matcher.test(entry)) files.push(join(folder, entry));
  }
  if (files.length === 0) throw new Error(`package.json "main" (${main}) matches no built file: run npm run build.`);
  return files;
}

/** Endpoints of the services a traced run talked to. */
export interface Endpoints {
  blob: string;
  queue: string;
  table: string;
}

export type RequestClass =
  | 'blob.copy'
  | 'blob.head'
  | 'blob.get'
  | 'blob.put'
  | 'blob.other'
  | 'queue.send'
  | 'queue.receive'
  | 'queue.delete'
  | 'queue.update'
  | 'queue.other'
  | 'table.read'
  | 'table.query'
  | 'table.write'
  | 'table.batch'
  | 'table.other'
  | 'other';

/** What one traced request was, as a storage transaction. */
export function classify(request: TracedRequest, endpoints: Endpoints): RequestClass {
  const { method, host, path, query } = request;
  if (host === endpoints.blob) {
    if (method === 'PUT' && request.copy === true) return 'blob.copy';
    if (method === 'HEAD') return 'blob.head';
    if (method === 'GET') return 'blob.get';
    if (method === 'PUT' && query['comp'] === undefined && query['restype'] === undefined) return 'blob.put';
    return 'blob.other';
  }
  if (host === endpoints.queue) {
    const messages = /\/messages(\/[^/]+)?$/.exec(path);
    if (messages !== null && method === 'POST') return 'queue.send';
    if (messages !== null && method === 'GET') return 'queue.receive';
    if (messages !== null && method === 'DELETE') return 'queue.delete';
    if (messages !== null && method === 'PUT') return 'queue.update';
    return 'queue.other';
  }
  if (host === endpoints.table) {
    if (path.endsWith('/$batch')) return 'table.batch';
    if (method === 'GET' && /\(PartitionKey='[^']*',RowKey='[^']*'\)$/.test(decodeURIComponent(path))) {
      return 'table.read';
    }
    if (method === 'GET') return 'table.query';
    if (method === 'POST' && /\/Tables$/.test(path)) return 'table.other';
    if (method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'MERGE' || method === 'DELETE') {
      return 'table.write';
    }
    return 'table.other';
  }
  return 'other';
}

export function countByClass(requests: readonly TracedRequest[], endpoints: Endpoints): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const request of requests) {
    const key = classify(request, endpoints);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** host:port of a service root URL. */
export function hostOf(url: string): string {
  return new URL(url).host;
}
