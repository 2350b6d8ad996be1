/**
 * The deployment package as the Azure Developer CLI builds it for a `host: function`, `language: ts|js` service,
 * reproduced from azd's source (Azure/azure-dev, cli/azd/pkg/project, read at commit ae35809, 2026-08-21):
 * - framework_service_node.go: Restore runs `npm install`; Build and Package each run `npm run build` in the project
 *   folder; the package folder is the project folder, or `dist` (OutputPath) under it when azure.yaml sets it;
 * - project_utils.go createDeployableZip: zips the package folder, skipping `.azure` folders, the ignore file itself,
 *   `local.settings.json`, and what the package folder's `.funcignore` matches; without a `.funcignore`,
 *   `node_modules` folders are skipped unless `remoteBuild` is explicitly false (rzip follows symbolic links and
 *   does not descend into a skipped folder);
 * - service_target_functionapp.go resolveFunctionAppRemoteBuild (Flex Consumption): reads the PROJECT folder's
 *   `.funcignore`; refuses `remoteBuild: true` unless it excludes node_modules, refuses `remoteBuild: false` when it
 *   does; unset means remote build exactly when it excludes node_modules (true when there is no .funcignore).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/** The one service of azure.yaml: its `key: value` lines (a minimal reader for this simple file). */
export function readAzureYamlService(projectRoot: string): { name: string; properties: Map<string, string> } {
  const services = new Map<string, Map<string, string>>();
  let inServices = false;
  let current: Map<string, string> | undefined;
  for (const line of readFileSync(join(projectRoot, 'azure.yaml'), 'utf8').split('\n')) {
    if (/^\S/.test(line)) {
      inServices = /^services:\s*$/.test(line);
      current = undefined;
      continue;
    }
    if (!inServices) continue;
    const service = /^ {2}([\w-]+):\s*$/.exec(line);
    if (service !== null) {
      current = new Map();
      services.set(service[1] ?? '', current);
      continue;
    }
    const property = /^ {4}([\w-]+):\s*(.*?)\s*(?:#.*)?$/.exec(line);
    if (property !== null && current !== undefined) {
      current.set(property[1] ?? '', (property[2] ?? '').replace(/^(['"])(.*)\1$/, '$2'));
    }
  }
  if (services.size !== 1) throw new Error(`azure.yaml has ${services.size} services; this reader expects one`);
  const [name, properties] = [...services][0] as [string, Map<string, string>];
  return { name, properties };
}

/** A .funcignore: gitignore patterns (negation, anchoring, folder-only, `*`, `**`, `?`), last match wins. */
export class IgnoreFile {
  private readonly rules: Array<{ negate: boolean; dirOnly: boolean; regex: RegExp }> = [];

  constructor(text: string) {
    for (const raw of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
      let line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const negate = line.startsWith('!');
      if (negate) line = line.slice(1);
      const dirOnly = line.endsWith('/');
      if (dirOnly) line = line.slice(0, -1);
      const anchored = line.includes('/');
      if (line.startsWith('/')) line = line.slice(1);
      let body = '';
      for (let i = 0; i < line.length; i++) {
        const c = line[i] as string;
        if (c === '*' && line[i + 1] === '*') {
          body += '.*';
          i++;
          if (line[i + 1] === '/') i++;
        } else if (c === '*') body += '[^/]*';
        else if (c === '?') body += '[^/]';
        else body += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      this.rules.push({ negate, dirOnly, regex: new RegExp(anchored ? `^${body}$` : `(^|/)${body}$`) });
    }
  }

  /** Whether `path` (relative to the ignore file's folder, `/`-separated) is ignored. */
  ignores(path: string, isDir: boolean): boolean {
    let ignored = false;
    for (const rule of this.rules) {
      if (rule.dirOnly && !isDir) continue;
      if (rule.regex.test(path)) ignored = !rule.negate;
    }
    return ignored;
  }
}

function readIgnoreFile(folder: string): IgnoreFile | undefined {
  const path = join(folder, '.funcignore');
  return existsSync(path) ? new IgnoreFile(readFileSync(path, 'utf8')) : undefined;
}

/** azd's remote build decision for a TypeScript function on Flex Consumption; throws azd's refusal. */
export function resolveRemoteBuild(projectRoot: string, remoteBuild: boolean | undefined): boolean {
  const ignore = readIgnoreFile(projectRoot);
  if (ignore === undefined) return remoteBuild ?? true;
  const nodeModulesExcluded = ignore.ignores('node_modules', true);
  if (remoteBuild === undefined) return nodeModulesExcluded;
  if (remoteBuild && !nodeModulesExcluded) {
    throw new Error(
      "azd refuses: 'remoteBuild: true' requires '.funcignore' to exclude node_modules (Update '.funcignore' to exclude node_modules, or set 'remoteBuild: false'.)",
    );
  }
  if (!remoteBuild && nodeModulesExcluded) {
    throw new Error(
      "azd refuses: 'remoteBuild: false' cannot be used when '.funcignore' excludes node_modules (Set 'remoteBuild: true', or remove node_modules from '.funcignore'.)",
    );
  }
  return remoteBuild;
}

/** The files azd puts in the zip, relative to the package folder (`/`-separated, sorted), with their sizes. */
export function collectPackageFiles(
  packageRoot: string,
  remoteBuild: boolean | undefined,
): Array<{ path: string; bytes: number }> {
  const ignore = readIgnoreFile(packageRoot);
  const out: Array<{ path: string; bytes: number }> = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      const info = statSync(full); // follows symbolic links, as rzip does
      const isDir = info.isDirectory();
      const rel = relative(packageRoot, full).split(sep).join('/');
      if (name === '.azure' && isDir) continue;
      if (name === '.funcignore' && !isDir) continue;
      if (name === 'local.settings.json' && !isDir) continue;
      if (ignore !== undefined) {
        if (ignore.ignores(rel, isDir)) continue;
      } else if (name === 'node_modules' && isDir && remoteBuild !== false) {
        continue;
      }
      if (isDir) walk(full);
      else out.push({ path: rel, bytes: info.size });
    }
  };
  walk(packageRoot);
  return out;
}
