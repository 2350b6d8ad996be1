#!/usr/bin/env node
// `npm run test:infra`: the infrastructure checks that need the Bicep CLI (scripts/bicep.js finds it; when the pinned
// one is not restored yet and `dotnet` exists, this script runs `dotnet restore infra/tools/bicep.csproj` first, so a
// fresh clone needs no separate step). Runs the compiled test/infra/*.infra.ts files with Node's test runner: bicep
// build and lint with zero diagnostics, the committed snapshots of infra/snapshots/*.bicepparam validated, refused
// parameter files refused, the snapshots checked against the code, and every KQL text (alert rules, workbook,
// infra/queries, the docs' KQL blocks) analysed with Microsoft's Kusto language service (test/infra/kql.ts).
// Not part of `npm test`, which must pass on a machine with Node alone.
//
// Usage: node scripts/test-infra.js                     run the tests (after `npm run build`)
//        node scripts/test-infra.js --update-snapshots  rewrite infra/snapshots/*.snapshot.json after an
//                                                       intended infra change (review the diff, then commit)

const { spawnSync } = require('node:child_process');
const { readdirSync, readFileSync, existsSync } = require('node:fs');
const { join } = require('node:path');
const { runBicep, resolveBicep, PINNED_VERSION, restoredPath } = require('./bicep.js');

const root = join(__dirname, '..');
const snapshotsDir = join(root, 'infra', 'snapshots');

function snapshotArgs(paramFile, mode) {
  const options = JSON.parse(readFileSync(join(snapshotsDir, 'snapshot-options.json'), 'utf8'));
  return [
    'snapshot',
    paramFile,
    '--mode',
    mode,
    '--subscription-id',
    options.subscriptionId,
    '--tenant-id',
    options.tenantId,
    '--location',
    options.location,
    '--deployment-name',
    options.deploymentName,
  ];
}

/** Restores the pinned Bicep CLI (infra/tools/bicep.csproj) when it is missing and the .NET SDK is installed. */
function restorePinnedBicep() {
  if (existsSync(restoredPath)) return;
  const dotnet = spawnSync('dotnet', ['--version'], { encoding: 'utf8' });
  if (dotnet.error !== undefined || dotnet.status !== 0) return; // no .NET SDK: resolveBicep says what to install
  console.log(`Restoring the pinned Bicep CLI ${PINNED_VERSION}: dotnet restore infra/tools/bicep.csproj`);
  const restore = spawnSync('dotnet', ['restore', join('infra', 'tools', 'bicep.csproj'), '--nologo'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (restore.status !== 0) throw new Error('dotnet restore infra/tools/bicep.csproj failed (see above).');
}

function main() {
  restorePinnedBicep();
  const cli = resolveBicep();
  const version = runBicep(['--version']).stdout.trim();
  console.log(`Bicep CLI: ${cli.description}: ${version}`);
  if (!version.includes(`version ${PINNED_VERSION} `)) {
    console.warn(
      `Note: the committed snapshots were made with Bicep CLI ${PINNED_VERSION}; another version may differ.`,
    );
  }
  if (process.argv.includes('--update-snapshots')) {
    for (const file of readdirSync(snapshotsDir)
      .filter((f) => f.endsWith('.bicepparam'))
      .sort()) {
      const result = runBicep(snapshotArgs(join('infra', 'snapshots', file), 'overwrite'));
      process.stdout.write(`${file}: ${result.status === 0 ? 'written' : 'FAILED'}\n${result.stdout}${result.stderr}`);
      if (result.status !== 0) process.exit(1);
    }
    return;
  }
  const dir = join(root, 'dist', 'test', 'infra');
  if (!existsSync(dir)) {
    console.error('dist/test/infra is missing: run "npm run build" first.');
    process.exit(1);
  }
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.infra.js'))
    .sort()
    .map((f) => join(dir, f));
  const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], {
    stdio: 'inherit',
    env: { ...process.env, BICEP_CLI: cli.prefix.length === 0 ? cli.command : (process.env.BICEP_CLI ?? '') },
  });
  process.exit(result.status ?? 1);
}

try {
  main();
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
}
