/**
 * `fetch` with a deadline, for the worker's outbound calls (Slack, the agent): aborted after
 * `timeoutMs` by a timer that is cleared the moment an answer or an error arrives. Not
 * `AbortSignal.timeout()`: in a Durable Object its timer stays pending after the answer and keeps
 * the object busy for the whole timeout (seen with Slack posts, commit 2116478).
 */
export async function fetchWithin(
  timeoutMs: number,
  what: string,
  url: string,
  init: RequestInit,
  doFetch: typeof fetch = fetch,
): Promise<Response> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no answer from ${what} within ${timeoutMs} ms`)), timeoutMs);
  try {
    return await doFetch(url, { ...init, signal: abort.signal });
  } finally {
    clearTimeout(timer);
  }
}
