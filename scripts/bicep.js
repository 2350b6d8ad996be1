#!/usr/bin/env node
// Runs the Bicep CLI: `node scripts/bicep.js <bicep arguments...>`, e.g. `node scripts/bicep.js lint infra/main.bicep`.
// Which compiler: BICEP_CLI (a path) when set; else a `bicep` on PATH; else `az bicep` when the Azure CLI has one
// installed; else the one `dotnet restore infra/tools/bicep.csproj` put in infra/tools/.packages (the version the
// committed snapshots were made with). `node scripts/bicep.js --which` prints the choice and its version.
// As a module: require('./bicep.js').resolveBicep() -> { command, prefix, description }.

const { spawnSync } = require('node:child_process');
const { existsSync, chmodSync, statSync } = require('node:fs');
const { delimiter, join } = require('node:path');

/** The Bicep CLI version infra/tools/bicep.csproj pins (keep the two in step). */
const PINNED_VERSION = '0.49.2';
const root = join(__dirname, '..');
const restoredPath = join(
  root,
  'infra',
  'tools',
  '.packages',
  'azure.bicep.commandline.linux-x64',
  PINNED_VERSION,
  'tools',
  'bicep',
);

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

function works(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return result.status === 0 ? `${result.stdout}${result.stderr}`.trim() : undefined;
}

/** The Bicep CLI to run, or an Error saying how to install one. */
function resolveBicep() {
  const explicit = process.env.BICEP_CLI;
  if (explicit !== undefined && explicit !== '') {
    if (!existsSync(explicit)) throw new Error(`BICEP_CLI is ${explicit}, which does not exist.`);
    return { command: explicit, prefix: [], description: `BICEP_CLI (${explicit})` };
  }
  const bicep = onPath('bicep');
  if (bicep !== undefined && works(bicep, ['--version']) !== undefined) {
    return { command: bicep, prefix: [], description: `bicep on PATH (${bicep})` };
  }
  const az = onPath('az');
  if (az !== undefined && /Bicep CLI version/.test(works(az, ['bicep', 'version']) ?? '')) {
    return { command: az, prefix: ['bicep'], description: 'az bicep' };
  }
  if (existsSync(restoredPath)) {
    // NuGet extracts files without their execute bit on some systems.
    if ((statSync(restoredPath).mode & 0o100) === 0) chmodSync(restoredPath, 0o755);
    return { command: restoredPath, prefix: [], description: `restored Bicep CLI ${PINNED_VERSION} (${restoredPath})` };
  }
  throw new Error(
    'No Bicep CLI found: none on PATH, no `az bicep`, and none restored. Install the pinned one with\n' +
      '  dotnet restore infra/tools/bicep.csproj\n' +
      `(it lands in ${restoredPath}), or set BICEP_CLI to a bicep executable.`,
  );
}

/** Runs bicep with the arguments; returns { status, stdout, stderr }. */
function runBicep(args, options = {}) {
  const cli = resolveBicep();
  const result = spawnSync(cli.command, [...cli.prefix, ...args], { encoding: 'utf8', cwd: root, ...options });
  if (result.error !== undefined) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

module.exports = { PINNED_VERSION, resolveBicep, runBicep, restoredPath };

if (require.main === module) {
  try {
    const args = process.argv.slice(2);
    if (args[0] === '--which') {
      const cli = resolveBicep();
      const version = runBicep(['--version']);
      process.stdout.write(`${cli.description}\n${version.stdout}${version.stderr}`);
      process.exit(version.status);
    }
    const cli = resolveBicep();
    const result = spawnSync(cli.command, [...cli.prefix, ...args], { stdio: 'inherit', cwd: process.cwd() });
    process.exit(result.status ?? 1);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(1);
  }
}
