/**
 * Telling Kubernetes API answers apart by HTTP status (404: not there, 409: someone wrote first).
 * One place for the check the Lease loop, the action store and the executors all make, kept apart
 * from agent/kube.ts so importing it does not load the sandbox cluster.
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
