import type {RunRecord} from '../../src/lib/tasks/journal.js'

/** A `node add c1` run that failed in its packages phase: what status and /metrics count as a failed run. */
export const FAILED_RUN: RunRecord = {
  id: '20260101-000000-abc123',
  action: 'node add',
  args: ['c1'],
  user: 'op',
  origin: 'admin',
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:01:00.000Z',
  result: 'failed',
  hosts: ['c1'],
  failures: [{phase: 'packages', host: 'c1', message: 'apt failed'}],
  resumes: 0,
}
