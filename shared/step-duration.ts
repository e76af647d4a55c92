/**
 * How long a step took from its reported start and finish, in ms; null while it has not both, or
 * when the two do not read as an interval (unparseable, or finished before it started). The one
 * reading of a step's duration for the audit log, Slack, the status page and the CLI.
 */
export function stepDurationMs(step: {
  startedAt?: string | undefined;
  finishedAt?: string | undefined;
}): number | null {
  if (!step.startedAt || !step.finishedAt) return null;
  const ms = Date.parse(step.finishedAt) - Date.parse(step.startedAt);
  return Number.isFinite(ms) && ms >= 0 ? ms : null;
}
