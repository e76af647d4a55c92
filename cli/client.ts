/**
 * The worker's operator API (design §3) as the CLI calls it: bearer `TURNOUT_TOKEN` against
 * `TURNOUT_URL`. Any answer that is not 2xx becomes a {@link Refused} carrying the problem's
 * detail; a worker that cannot be reached becomes an {@link Unreachable}.
 */

/** A non-2xx answer: the worker refused (exit 1), with its `application/problem+json` fields. */
export class Refused extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly errors: { path: string; message: string }[];
  readonly body: unknown;

  constructor(status: number, title: string, detail: string, errors: Refused["errors"], body: unknown) {
    super(detail);
    this.name = "Refused";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.errors = errors;
    this.body = body;
  }
}

/** The worker did not answer at all (connection refused, DNS, timeout). */
export class Unreachable extends Error {
  constructor(url: string, cause: unknown) {
    // fetch's own message is "fetch failed"; the reason (ECONNREFUSED, a timeout) is its cause.
    const why = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : cause;
    super(`cannot reach the worker at ${url}: ${String(why)}`);
    this.name = "Unreachable";
  }
}

/** A 2xx answer: its status (200, or 202 for a break-glass request) and JSON body. */
export interface Answer<T> {
  status: number;
  body: T;
}

const TIMEOUT_MS = 15_000;

/** Talks to one worker with one token. */
export class Client {
  readonly baseUrl: string;
  readonly #token: string;

  constructor(baseUrl: string, token: string) {
    this.baseUrl = baseUrl;
    this.#token = token;
  }

  /** `GET <path>`; resolves with the JSON body of a 2xx answer. */
  get<T>(path: string): Promise<Answer<T>> {
    return this.request<T>("GET", path);
  }

  /** `POST <path>` with a JSON body. */
  post<T>(path: string, body: unknown): Promise<Answer<T>> {
    return this.request<T>("POST", path, body);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<Answer<T>> {
    const url = new URL(path, this.baseUrl.endsWith("/") ? this.baseUrl : `${this.baseUrl}/`).toString();
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          accept: "application/json, application/problem+json",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      throw new Unreachable(this.baseUrl, err);
    }
    const raw = await res.text();
    let parsed: unknown = raw;
    try {
      parsed = raw === "" ? null : JSON.parse(raw);
    } catch {
      // not JSON: kept as text for the message below
    }
    if (!res.ok) throw refusal(res, parsed);
    return { status: res.status, body: parsed as T };
  }
}

function refusal(res: Response, body: unknown): Refused {
  const p = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
  const detail =
    typeof p.detail === "string"
      ? p.detail
      : typeof body === "string" && body.trim() !== ""
        ? body.trim().slice(0, 500)
        : res.statusText || `HTTP ${res.status}`;
  const errors = Array.isArray(p.errors)
    ? p.errors.flatMap((e) =>
        typeof e === "object" && e !== null && "path" in e && "message" in e
          ? [{ path: String(e.path), message: String(e.message) }]
          : [],
      )
    : [];
  return new Refused(res.status, typeof p.title === "string" ? p.title : res.statusText, detail, errors, body);
}
