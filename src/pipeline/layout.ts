import { randomBytes } from 'node:crypto';
import type { AttributeSet, BillingPeriod } from '../config';

/**
 * A run id: the UTC start time to the millisecond, then random hex, so ids are unique and sort
 * as plain strings by start time (SPEC section 4). Example: 20261125T114100123Z-9f3a1c2b.
 */
export function newRunId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('.', '');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/** The start time encoded in a run id, as ISO 8601. */
export function runIdTime(runId: string): string | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-/.exec(runId);
  if (match === null) return undefined;
  return `${match[1]}-${match[2]}-${match[3]}T${match[4]}:${match[5]}:${match[6]}.${match[7]}Z`;
}

/** Does this look like a run id? (Used to validate input from HTTP routes and queue messages.) */
export function isRunId(value: string): boolean {
  return /^\d{8}T\d{9}Z-[0-9a-f]{8}$/.test(value);
}

/** `YYYY-MM` of the billing period: the run's start month for `current`, the month before for `last` (UTC). */
export function billingMonthFor(period: BillingPeriod, startedAt: string): string {
  const start = new Date(startedAt);
  let year = start.getUTCFullYear();
  let month = start.getUTCMonth() + 1;
  if (period === 'last') {
    month -= 1;
    if (month === 0) {
      month = 12;
      year -= 1;
    }
  }
  return `${year}-${String(month).padStart(2, '0')}`;
}

/** Fields that place a run in the destination layout. */
export interface LayoutKey {
  prefix: string;
  billingMonth: string;
  currency: string;
  attributeSet: AttributeSet;
}

/** `{prefix}/billingMonth={YYYY-MM}/currency={CUR}/attributeSet={set}` (SPEC section 4). */
export function seriesFolder(key: LayoutKey): string {
  return `${key.prefix}/billingMonth=${key.billingMonth}/currency=${key.currency}/attributeSet=${key.attributeSet}`;
}

/** The run folder: `{series}/run={runId}`. */
export function runFolder(key: LayoutKey, runId: string): string {
  return `${seriesFolder(key)}/run=${runId}`;
}

/** The pointer to the newest complete run of a series. */
export function latestPath(key: LayoutKey): string {
  return `${seriesFolder(key)}/latest.json`;
}

/** The in-flight lock key of a (currency, period, attribute set). */
export function startLockKey(currency: string, period: BillingPeriod, attributeSet: AttributeSet): string {
  return `${currency}-${period}-${attributeSet}`;
}
