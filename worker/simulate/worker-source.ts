/**
 * `--worker URL --target NAME`: a running worker's audit log, paged through
 * `GET /v1/targets/:name/events?after=<seq>&limit=<n>` (design §3) with a viewer token.
 */
import type { ApiEvent } from "./inputs.ts";

const PAGE = 1000;

/** The worker refused or could not be read; the message says which and why. */
export class WorkerSourceError extends Error {
  readonly code = "worker";
}

/** Every audit event of `target`, oldest first. */
export async function fetchAuditEvents(
  baseUrl: string,
  target: string,
  token: string,
  fetchFn: typeof fetch,
): Promise<ApiEvent[]> {
  const events: ApiEvent[] = [];
  let after = 0;
  for (;;) {
    const url = new URL(
      `v1/targets/${encodeURIComponent(target)}/events`,
      baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`,
    );
    url.searchParams.set("after", String(after));
    url.searchParams.set("limit", String(PAGE));
    let res: Response;
    try {
      res = await fetchFn(url.toString(), { headers: { authorization: `Bearer ${token}` } });
    } catch (err) {
      throw new WorkerSourceError(
        `cannot reach the worker at ${baseUrl}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const text = await res.text();
    if (!res.ok) {
      let detail = text.slice(0, 200);
      try {
        const p = JSON.parse(text) as { detail?: string; title?: string };
        detail = p.detail ?? p.title ?? detail;
      } catch {
        // not a problem document; keep the text
      }
      const hint = res.status === 401 || res.status === 403 ? " (set TURNOUT_TOKEN to a viewer token)" : "";
      throw new WorkerSourceError(`GET ${url.pathname} answered ${res.status}: ${detail}${hint}`);
    }
    const page = JSON.parse(text) as { events?: ApiEvent[]; next?: number };
    events.push(...(page.events ?? []));
    if (page.next === undefined || page.next <= after) return events;
    after = page.next;
  }
}
