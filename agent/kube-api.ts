/**
 * Small pieces of Kubernetes API calls that the Lease loop, the action store and the executors
 * all need: telling answers apart by HTTP status (404: not there, 409: someone wrote first), the
 * dry-run option and label selectors. Kept apart from agent/kube.ts so importing it does not load
 * the sandbox cluster.
 */
import { ApiException } from "@kubernetes/client-node";

/** Whether `err` is an API answer with one of the HTTP `statuses`. */
export function isApiStatus(err: unknown, ...statuses: number[]): boolean {
  return err instanceof ApiException && statuses.includes(err.code);
}

/** What `read` resolves to, or undefined when the API says the object does not exist (404). */
export async function unlessNotFound<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (isApiStatus(err, 404)) return undefined;
    throw err;
  }
}

/** The `dryRun=All` parameter of a write, when `dryRun`: the API server validates but persists nothing. */
export function dryRunOption(dryRun: boolean): { dryRun?: string } {
  return dryRun ? { dryRun: "All" } : {};
}

/** `k=v,k2=v2` for matchLabels; "" when there are none. */
export function labelSelector(matchLabels: Record<string, string>): string {
  return Object.entries(matchLabels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/**
 * An API failure as text: `<prefix> <status>` and the Status body's message when it has one;
 * any other error's own message.
 */
export function apiErrorText(err: unknown, prefix = "Kubernetes API"): string {
  if (err instanceof ApiException) {
    try {
      const body = JSON.parse(String(err.body)) as { message?: unknown };
      if (typeof body.message === "string") return `${prefix} ${err.code}: ${body.message}`;
    } catch {
      // not a Status body
    }
    return `${prefix} ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
