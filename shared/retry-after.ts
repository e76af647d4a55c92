/**
 * The wait an HTTP `Retry-After` header asks for, in milliseconds (RFC 9110 §10.2.3: whole
 * seconds, or an HTTP date), or undefined when absent or unreadable. A date in the past is 0.
 * Read by the worker (the agent's 503 while it is not the leader) and the agent (DNS APIs' 429).
 */
export function retryAfterMs(header: string | null | undefined, nowMs: number): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP date names its month (IMF-fixdate, RFC 850 and asctime alike); Date.parse alone would
  // read "1.5" or "-5" as a day in 2001, i.e. "retry now".
  if (!/[A-Za-z]{3}/.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}
