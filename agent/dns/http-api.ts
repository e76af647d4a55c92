/**
 * The HTTP plumbing the Cloudflare and DigitalOcean providers share: bearer auth, JSON bodies,
 * 429 retried after `Retry-After` (bounded), error bodies turned into DnsError with a
 * provider-specific message extractor, and a time bound on every request (answer body included):
 * without one a provider that stops answering holds the flip for undici's 300 s per call. Also
 * the paging both list endpoints need (`page` and `per_page` query parameters).
 */
import type { z } from "zod";
import { retryAfterMs } from "../../shared/retry-after.ts";
import { describeFetchError } from "../fetch-error.ts";
import { DnsError } from "./errors.ts";

/** Retry policy for 429 responses. */
export interface RateLimitPolicy {
  /** Attempts in all, the first included. @default 5 */
  maxAttempts?: number;
  /** Upper bound on one wait, whatever Retry-After says. @default 30000 */
  maxWaitMs?: number;
}

/** Default bound on one request, answer body included. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

export interface HttpApiOptions {
  provider: string;
  baseUrl: string;
  token: string;
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
  /** Pulls a person-readable message out of an error body. */
  errorMessage: (body: unknown) => string | undefined;
  rateLimit?: RateLimitPolicy;
  /** Bound on one request, answer body included. @default DEFAULT_REQUEST_TIMEOUT_MS */
  timeoutMs?: number;
  /** Aborts the request in flight (agent shutdown, lost leadership); rejects with its reason. */
  signal?: AbortSignal;
}

/** One page of a list, as the caller read it. */
export interface ListPage<T> {
  items: T[];
  /** Whether another page follows. */
  more: boolean;
}

/** A JSON API client for one provider. */
export interface HttpApi {
  request(method: string, path: string, body?: unknown): Promise<unknown>;
  /**
   * GETs `path?<query>&page=n&per_page=<perPage>` from page 1 on (at most 1000 pages), checks
   * each answer against `schema` and collects the items `readPage` takes from it.
   */
  listPages<S extends z.ZodType, T>(
    path: string,
    query: Record<string, string>,
    perPage: number,
    schema: S,
    readPage: (page: z.infer<S>, pageNumber: number) => ListPage<T>,
  ): Promise<T[]>;
}

/** Creates the client; `path` is appended to `baseUrl` (which may carry a path prefix). */
export function createHttpApi(options: HttpApiOptions): HttpApi {
  const maxAttempts = options.rateLimit?.maxAttempts ?? 5;
  const maxWaitMs = options.rateLimit?.maxWaitMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const base = options.baseUrl.replace(/\/+$/, "");

  /** One fetch and its body, aborted after `timeoutMs` or when `options.signal` aborts. */
  async function send(what: string, url: string, init: RequestInit): Promise<{ res: Response; text: string }> {
    options.signal?.throwIfAborted();
    const controller = new AbortController();
    let timedOut = false;
    // A cleared timer rather than AbortSignal.timeout, which keeps its timer alive after the answer.
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const res = await options.fetch(url, { ...init, signal: controller.signal });
      return { res, text: await res.text() };
    } catch (err) {
      options.signal?.throwIfAborted();
      if (timedOut) throw new DnsError("DNS_TIMEOUT", `${what}: no complete answer within ${timeoutMs} ms`);
      throw new DnsError("DNS_NETWORK", `${what}: ${describeFetchError(err)}`);
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  const api: HttpApi = {
    async listPages(path, query, perPage, schema, readPage) {
      const items = [];
      for (let page = 1; page <= 1000; page++) {
        const search = new URLSearchParams({ ...query, page: String(page), per_page: String(perPage) });
        const parsed = schema.safeParse(await api.request("GET", `${path}?${search}`));
        if (!parsed.success) throw new DnsError("DNS_API_ERROR", `${options.provider}: unexpected list response shape`);
        const read = readPage(parsed.data, page);
        items.push(...read.items);
        if (!read.more) break;
      }
      return items;
    },
    async request(method, path, body) {
      const url = `${base}${path}`;
      const what = `${options.provider} ${method} ${path}`;
      for (let attempt = 1; ; attempt++) {
        const { res, text } = await send(what, url, {
          method,
          headers: {
            authorization: `Bearer ${options.token}`,
            accept: "application/json",
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = undefined;
        }
        if (res.ok) return parsed;
        const message = options.errorMessage(parsed) ?? (text.slice(0, 200) || res.statusText);
        const failure = `${what}: HTTP ${res.status}: ${message}`;
        if (res.status === 429) {
          if (attempt >= maxAttempts) {
            throw new DnsError("DNS_API_RATE_LIMITED", `${failure} (still rate limited after ${attempt} attempts)`);
          }
          // Without Retry-After, back off exponentially from 1 s.
          const wait = retryAfterMs(res.headers.get("retry-after"), Date.now()) ?? 1000 * 2 ** (attempt - 1);
          await options.sleep(Math.min(wait, maxWaitMs));
          continue;
        }
        if (res.status === 401 || res.status === 403) throw new DnsError("DNS_API_AUTH", failure);
        if (res.status === 404) throw new DnsError("DNS_API_NOT_FOUND", failure);
        throw new DnsError("DNS_API_ERROR", failure);
      }
    },
  };
  return api;
}
