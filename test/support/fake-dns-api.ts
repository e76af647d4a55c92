/**
 * What the DNS provider fakes (fake-cloudflare-dns.ts, fake-digitalocean-dns.ts) share: the
 * surface tests drive, bearer-token access, the on-demand 429s, 500s on a chosen write (a flip
 * broken off between its separate writes), hangs (a provider that stops answering) and the HTTP
 * server on a random 127.0.0.1 port. Each fake keeps its provider's own paths, bodies and error
 * shapes.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

/** Options every DNS provider fake takes. */
export interface FakeDnsOptions {
  /** Token with edit rights. */
  token: string;
  /** Tokens that may only read (writes get 403). */
  readOnlyTokens?: string[];
  /** The provider's per_page cap; a small cap here makes pagination testable. */
  maxPerPage?: number;
}

/** A DNS provider fake as tests see it; `R` is the provider's record shape. */
export interface FakeDnsApi<R> {
  /** Base URL to put in `provider.baseUrl`. */
  baseUrl: string;
  records: R[];
  requests: { method: string; path: string; status: number }[];
  addRecord(type: string, name: string, value: string, ttl?: number): R;
  /** The sorted values of the records of `type` called `name` (in the provider's own naming). */
  valuesOf(type: string, name: string): string[];
  /** The next `count` requests get 429 with `Retry-After: seconds`. */
  rateLimitNext(count: number, retryAfterSeconds: number): void;
  /** The `n`th write (POST, PUT, DELETE) from now answers 500 and changes nothing; once. */
  failNthWrite(n: number): void;
  /**
   * The next `count` requests are never answered (with `afterHeaders`: 200 headers are sent, the
   * body never ends). Resolves once the last of them has arrived.
   */
  stallNext(count: number, options?: { afterHeaders?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

/** What the request's bearer token may do: "write" (the token), "read" (a read-only one) or nothing. */
export function bearerAccess(
  req: IncomingMessage,
  options: { token: string; readOnlyTokens?: string[] },
): "write" | "read" | "none" {
  const auth = req.headers.authorization ?? "";
  const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
  if (options.readOnlyTokens?.includes(token) ?? false) return "read";
  return token === options.token ? "write" : "none";
}

/** On-demand rate limiting: `arm(n, s)` makes the next n requests `take()` a Retry-After of s. */
export function rateLimiter() {
  let remaining = 0;
  let retryAfter = 1;
  return {
    arm(count: number, retryAfterSeconds: number): void {
      remaining = count;
      retryAfter = retryAfterSeconds;
    },
    /** The Retry-After value when this request must get 429, else undefined. */
    take(): string | undefined {
      if (remaining <= 0) return undefined;
      remaining--;
      return String(retryAfter);
    },
  };
}

/** On-demand write failure: `arm(n)` makes the nth write from now `take` true (once). */
export function writeFailer() {
  let countdown = 0;
  return {
    arm(n: number): void {
      countdown = n;
    },
    /** True when this request is the write that must fail. */
    take(method: string | undefined): boolean {
      if (countdown <= 0 || method === "GET" || method === "HEAD") return false;
      countdown--;
      return countdown === 0;
    },
  };
}

/**
 * Serves `handle` on a random 127.0.0.1 port; a handler that throws answers 500 with
 * `errorBody(err)` as JSON. `stallNext` holds requests unanswered instead of handling them.
 * `stop` drops open connections (held ones included) and closes the server.
 */
export async function listenLocal(
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<unknown>,
  errorBody: (err: unknown) => unknown,
): Promise<{ origin: string; stallNext: FakeDnsApi<unknown>["stallNext"]; stop(): Promise<void> }> {
  let stall: { remaining: number; afterHeaders: boolean; arrived: () => void } | undefined;
  const server = createServer((req, res) => {
    if (stall && stall.remaining > 0) {
      stall.remaining--;
      if (stall.afterHeaders) {
        res.writeHead(200, { "content-type": "application/json" });
        res.write("{");
      }
      if (stall.remaining === 0) stall.arrived();
      return;
    }
    handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify(errorBody(err)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    origin: `http://127.0.0.1:${port}`,
    stallNext: (count, options = {}) =>
      new Promise<void>((arrived) => {
        stall = { remaining: count, afterHeaders: options.afterHeaders ?? false, arrived };
        if (count <= 0) arrived();
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
