/**
 * Helpers of the `npm run test:infra` tests: the repository root, running the Bicep CLI through scripts/bicep.js, and
 * reading the committed snapshots (the resolved deployment `bicep snapshot` predicts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The repository root: the nearest folder above this file whose package.json is this project's. */
function findRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown };
      if (parsed.name === 'csp-unbilled-export') return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`No csp-unbilled-export package.json above ${__dirname}`);
    dir = parent;
  }
}

export const root = findRoot();
export const infraDir = join(root, 'infra');
export const snapshotsDir = join(infraDir, 'snapshots');

export interface BicepResult {
  status: number;
  output: string;
}

/** Runs the Bicep CLI (scripts/bicep.js picks it) from the repository root; output is stdout + stderr. */
export function bicep(...args: string[]): BicepResult {
  const result = spawnSync(process.execPath, [join(root, 'scripts', 'bicep.js'), ...args], {
    cwd: root,
    encoding: 'utf8',
  });
  return { status: result.status ?? 1, output: `${result.stdout ?? ''}${result.stderr ?? ''}`.trim() };
}

interface SnapshotOptions {
  subscriptionId: string;
  tenantId: string;
  location: string;
  deploymentName: string;
}

export const snapshotOptions = JSON.parse(
  readFileSync(join(snapshotsDir, 'snapshot-options.json'), 'utf8'),
) as SnapshotOptions;

/** `bicep snapshot <file> --mode <mode>` with the fixed deployment context of infra/snapshots/snapshot-options.json. */
export function snapshotArgs(paramFile: string, mode: 'validate' | 'overwrite'): string[] {
  return [
    'snapshot',
    paramFile,
    '--mode',
    mode,
    '--subscription-id',
    snapshotOptions.subscriptionId,
    '--tenant-id',
    snapshotOptions.tenantId,
    '--location',
    snapshotOptions.location,
    '--deployment-name',
    snapshotOptions.deploymentName,
  ];
}

export function listFiles(dir: string, extension: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(path, extension));
    else if (entry.name.endsWith(extension)) out.push(path);
  }
  return out.sort();
}

export function relativeName(path: string): string {
  return path.slice(root.length + 1).replace(/\\/g, '/');
}

// ---------------------------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------------------------

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface PredictedResource {
  id: string;
  type: string;
  name: string;
  apiVersion?: string;
  location?: string;
  kind?: string;
  sku?: { [key: string]: Json };
  identity?: { [key: string]: Json };
  tags?: { [key: string]: Json };
  properties?: { [key: string]: Json };
}

export interface Snapshot {
  predictedResources: PredictedResource[];
  diagnostics: Json[];
  outputs?: { [key: string]: Json };
}

export function readSnapshot(name: string): Snapshot {
  return JSON.parse(readFileSync(join(snapshotsDir, `${name}.snapshot.json`), 'utf8')) as Snapshot;
}

/** The value at a dotted path of a JSON value, or undefined. */
export function at(value: Json | undefined, path: string): Json | undefined {
  let current: Json | undefined = value;
  for (const key of path.split('.')) {
    if (current === null || current === undefined || typeof current !== 'object' || Array.isArray(current)) {
      return undefined;
    }
    current = current[key];
  }
  return current;
}

/** An ARM expression (a string in brackets) that the snapshot could not resolve before deployment. */
export function isExpression(value: Json | undefined): boolean {
  return typeof value === 'string' && value.startsWith('[') && value.endsWith(']');
}
