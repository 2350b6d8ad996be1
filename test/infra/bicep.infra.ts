/**
 * The real Bicep compiler on infra/: build and lint with zero errors and zero warnings, every suppression explained,
 * the committed snapshots still what the templates deploy, and the parameter combinations the deployment must refuse
 * refused with a clear message. Needs the Bicep CLI (scripts/bicep.js; `npm run test:infra`).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bicep, infraDir, listFiles, relativeName, snapshotArgs, snapshotsDir } from './support';

const bicepFiles = listFiles(infraDir, '.bicep');
const paramFiles = readdirSync(snapshotsDir)
  .filter((f) => f.endsWith('.bicepparam'))
  .sort();
const refusedDir = join(snapshotsDir, 'refused');
const refusedFiles = readdirSync(refusedDir)
  .filter((f) => f.endsWith('.bicepparam'))
  .sort();

describe('Bicep CLI', () => {
  it('is the version the snapshots were made with (infra/tools/bicep.csproj)', () => {
    const version = bicep('--version');
    assert.equal(version.status, 0, version.output);
    const project = readFileSync(join(infraDir, 'tools', 'bicep.csproj'), 'utf8');
    const pinned = /Include="Azure\.Bicep\.CommandLine\.linux-x64" Version="\[([\d.]+)\]"/.exec(project)?.[1];
    assert.ok(pinned !== undefined, 'infra/tools/bicep.csproj pins Azure.Bicep.CommandLine.linux-x64');
    const docs = readFileSync(join(infraDir, '..', 'docs', 'deploy.md'), 'utf8');
    assert.ok(docs.includes(`Bicep CLI ${pinned}`), `docs/deploy.md names the Bicep CLI version (${pinned})`);
    assert.match(version.output, new RegExp(`Bicep CLI version ${pinned.replace(/\./g, '\\.')} `), version.output);
  });
});

describe('bicep build and lint', () => {
  it('builds infra/main.bicep with no error and no warning', () => {
    const result = bicep('build', 'infra/main.bicep', '--stdout');
    assert.equal(result.status, 0, result.output.slice(-4000));
    // With --stdout the template is on stdout; diagnostics are lines "<file>(line,col) : <Level> <code>: ...".
    const diagnostics = result.output.split('\n').filter((line) => /\(\d+,\d+\) : (Error|Warning|Info)/.test(line));
    assert.deepEqual(diagnostics, []);
  });

  it(`lints every Bicep file of infra/ (${bicepFiles.length}) with no diagnostic`, () => {
    assert.ok(bicepFiles.length >= 8, 'main.bicep and its modules');
    const result = bicep('lint', '--pattern', 'infra/**/*.bicep');
    assert.equal(result.status, 0, result.output);
    assert.equal(result.output, '', 'bicep lint reports nothing');
  });

  it('explains every #disable-next-line suppression in a comment', () => {
    for (const file of bicepFiles) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, index) => {
        const suppression = /#disable-next-line\s+([\w-]+(?:\s+[\w-]+)*)?(.*)$/.exec(line);
        if (suppression === null) return;
        const sameLine = /\/\/\s*\S.{10,}/.test(suppression[2] ?? '');
        const lineAbove = /^\s*\/\/\s*\S.{10,}/.test(lines[index - 1] ?? '');
        assert.ok(sameLine || lineAbove, `${relativeName(file)}:${index + 1}: say why the rule is suppressed`);
      });
    }
  });
});

describe('alerts of a new deployment', () => {
  it('bakes the deployment time into the no-success rule by default (utcNow(), passed to the alerts module)', () => {
    const main = readFileSync(join(infraDir, 'main.bicep'), 'utf8');
    assert.match(main, /^param deploymentTime string = utcNow\('yyyy-MM-ddTHH:mm:ssZ'\)$/m);
    assert.match(main, /^ {4}deploymentTime: deploymentTime$/m);
    const query = readFileSync(join(infraDir, 'queries', 'alert-no-successful-run.kql'), 'utf8');
    assert.match(query, /^let deployedAt = datetime\(2026-01-01T00:00:00Z\);$/m, 'the line alerts.bicep replaces');
  });
});

describe('bicep snapshot', () => {
  it('covers a new and an existing destination, with and without an app registration', () => {
    for (const name of [
      'new-destination',
      'existing-destination-managed-identity',
      'existing-destination-app-registration',
      'new-destination-app-registration-older-azd',
    ]) {
      assert.ok(paramFiles.includes(`${name}.bicepparam`), `infra/snapshots/${name}.bicepparam`);
    }
  });

  it('has a committed snapshot for every parameter file, and none without one', () => {
    const snapshots = readdirSync(snapshotsDir).filter((f) => f.endsWith('.snapshot.json'));
    assert.deepEqual(
      snapshots.map((f) => f.replace(/\.snapshot\.json$/, '')).sort(),
      paramFiles.map((f) => f.replace(/\.bicepparam$/, '')).sort(),
    );
  });

  for (const file of paramFiles) {
    it(`${file}: the committed snapshot is what the templates deploy (--mode validate)`, () => {
      const result = bicep(...snapshotArgs(join('infra', 'snapshots', file), 'validate'));
      assert.equal(
        result.status,
        0,
        `${result.output.slice(0, 6000)}\nIf the change is intended: node scripts/test-infra.js --update-snapshots, then review and commit the diff.`,
      );
    });
  }
});

describe('parameters the deployment refuses', () => {
  it('has refused cases, each naming the message it expects', () => {
    assert.ok(refusedFiles.length >= 3);
    for (const file of refusedFiles) {
      assert.match(readFileSync(join(refusedDir, file), 'utf8'), /^\/\/ expect: .{20,}$/m, file);
    }
  });

  for (const file of refusedFiles) {
    it(`refuses ${file} with its message, before creating anything`, () => {
      const expected = /^\/\/ expect: (.+)$/m.exec(readFileSync(join(refusedDir, file), 'utf8'))?.[1] ?? '';
      const result = bicep(...snapshotArgs(join('infra', 'snapshots', 'refused', file), 'overwrite'));
      const written = join(refusedDir, file.replace(/\.bicepparam$/, '.snapshot.json'));
      if (existsSync(written)) {
        rmSync(written);
        assert.fail(`bicep snapshot of ${file} succeeded: the deployment was not refused`);
      }
      assert.notEqual(result.status, 0, 'bicep snapshot must fail');
      // A template variable that fails is evaluated when the deployment starts: nothing is created.
      assert.match(result.output, /The template variable '\w+' is not valid: /);
      assert.ok(result.output.includes(expected), `expected "${expected}" in:\n${result.output}`);
    });
  }
});
