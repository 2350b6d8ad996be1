/**
 * What the Functions host must see for each function: trigger, schedule, queue, route, auth level. The names come
 * from src/names.ts (FunctionNames), so a function added there is checked too: against its entry below, or, until
 * it has one, against the rules every function of this app follows (one trigger; a queue of QueueNames on
 * AzureWebJobsStorage; HTTP behind a function key; a timer on a %SETTING% schedule).
 */
import assert from 'node:assert/strict';
import { FunctionNames, HOST_STORAGE_CONNECTION, QueueNames, SUPERVISE_SCHEDULE } from '../../src/names';

export interface Binding {
  type: string;
  direction: string;
  [key: string]: unknown;
}

type Expectation =
  | { trigger: 'timerTrigger'; schedule: string; runOnStartup: boolean; useMonitor: boolean }
  | { trigger: 'httpTrigger'; methods: string[]; route: string; authLevel: 'function' }
  | { trigger: 'queueTrigger'; queueName: string; connection: string };

const queue = (queueName: string): Expectation => ({
  trigger: 'queueTrigger',
  queueName,
  connection: HOST_STORAGE_CONNECTION,
});

/** The registrations of the functions known when this was written (SPEC section 2). */
export const EXPECTED_REGISTRATIONS: Partial<Record<string, Expectation>> = {
  startExportsTimer: { trigger: 'timerTrigger', schedule: '%EXPORT_SCHEDULE%', runOnStartup: false, useMonitor: true },
  startExportsHttp: { trigger: 'httpTrigger', methods: ['POST'], route: 'exports', authLevel: 'function' },
  listExportRuns: { trigger: 'httpTrigger', methods: ['GET'], route: 'exports/runs/{runId?}', authLevel: 'function' },
  pollExportStatus: queue(QueueNames.status),
  copyExportBlob: queue(QueueNames.copy),
  exportStatusPoison: queue(QueueNames.statusPoison),
  exportCopyPoison: queue(QueueNames.copyPoison),
  superviseRuns: { trigger: 'timerTrigger', schedule: SUPERVISE_SCHEDULE, runOnStartup: false, useMonitor: true },
};

/** Every function name of src/names.ts, sorted: what must be registered, each once. */
export function expectedFunctionNames(): string[] {
  return Object.values(FunctionNames).sort();
}

/** Asserts one function's bindings (`metadata.bindings` as @azure/functions hands them to the worker). */
export function assertRegistration(name: string, bindings: Record<string, Binding>): void {
  const all = Object.values(bindings);
  const triggers = all.filter((b) => /trigger$/i.test(b.type));
  assert.equal(triggers.length, 1, `${name} has one trigger`);
  const trigger = triggers[0] as Binding;
  const others = all.filter((b) => b !== trigger);
  assert.equal(trigger.direction, 'in', `${name}: the trigger is an input`);
  const expected = EXPECTED_REGISTRATIONS[name];
  switch (expected?.trigger ?? trigger.type) {
    case 'timerTrigger': {
      assert.equal(trigger.type, 'timerTrigger', `${name} is a timer`);
      if (expected?.trigger === 'timerTrigger') {
        assert.equal(trigger['schedule'], expected.schedule, `${name}: schedule`);
        assert.equal(trigger['runOnStartup'], expected.runOnStartup, `${name}: runOnStartup`);
        assert.equal(trigger['useMonitor'], expected.useMonitor, `${name}: useMonitor`);
      } else {
        assert.match(
          String(trigger['schedule']),
          /^%\w+%$|^(\S+\s+){5}\S+$/,
          `${name}: a %SETTING% or NCRONTAB schedule`,
        );
        assert.notEqual(trigger['runOnStartup'], true, `${name}: no runOnStartup in production`);
      }
      assert.deepEqual(others, [], `${name}: no other binding`);
      break;
    }
    case 'httpTrigger': {
      assert.equal(trigger.type, 'httpTrigger', `${name} is HTTP`);
      assert.equal(trigger['authLevel'], 'function', `${name}: behind a function key`);
      if (expected?.trigger === 'httpTrigger') {
        assert.deepEqual(trigger['methods'], expected.methods, `${name}: methods`);
        assert.equal(trigger['route'], expected.route, `${name}: route`);
      }
      assert.deepEqual(
        others.map((b) => [b.type, b.direction]),
        [['http', 'out']],
        `${name}: the response is the one output`,
      );
      assert.equal(bindings['$return']?.type, 'http', `${name}: the handler returns the response`);
      break;
    }
    case 'queueTrigger': {
      assert.equal(trigger.type, 'queueTrigger', `${name} is a queue trigger`);
      assert.equal(trigger['connection'], HOST_STORAGE_CONNECTION, `${name}: the host storage connection`);
      if (expected?.trigger === 'queueTrigger')
        assert.equal(trigger['queueName'], expected.queueName, `${name}: queue`);
      else assert.ok((Object.values(QueueNames) as string[]).includes(String(trigger['queueName'])), `${name}: queue`);
      assert.deepEqual(others, [], `${name}: no output binding (messages are sent with a delay by the queue adapter)`);
      break;
    }
    default:
      assert.fail(`${name} has a ${trigger.type}, which this app does not use: add its expectation here`);
  }
}
