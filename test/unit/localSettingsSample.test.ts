import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const SAMPLE = join(__dirname, '..', '..', '..', 'local.settings.sample.json');

describe('local.settings.sample.json', () => {
  it('carries no AzureWebJobsFeatureFlags: the v4 programming model indexes its functions without the preview flag', () => {
    const values = (JSON.parse(readFileSync(SAMPLE, 'utf8')) as { Values: Record<string, string> }).Values;
    assert.equal(values['AzureWebJobsFeatureFlags'], undefined);
    assert.equal(values['FUNCTIONS_WORKER_RUNTIME'], 'node');
  });
});
