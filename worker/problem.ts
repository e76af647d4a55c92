/**
 * The worker's one error type and its mapping to `application/problem+json` (design §3).
 * Throw a {@link Problem} anywhere in a handler; `app.onError` turns it into the response.
 */
import type { ConfigProblem } from "../shared/config.ts";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** Stable problem codes; the `type` URI is `urn:turnout:problem:<code>`. */
export type ProblemCode =
  | "bad-request"
  | "validation"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "conflict"
  | "payload-too-large"
  | "unsupported-media-type"
  | "unavailable"
  | "config-invalid"
  | "internal";

const TITLES: Record<ProblemCode, [status: number, title: string]> = {
  "bad-request": [400, "Bad request"],
  validation: [400, "Validation failed"],
  unauthorized: [401, "Unauthorized"],
  forbidden: [403, "Forbidden"],
  "not-found": [404, "Not found"],
  conflict: [409, "Conflict"],
  "payload-too-large": [413, "Payload too large"],
  "unsupported-media-type": [415, "Unsupported media type"],
  unavailable: [503, "Service unavailable"],
  "config-invalid": [503, "Configuration invalid"],
  internal: [500, "Internal error"],
};

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: ConfigProblem[];
  [extra: string]: unknown;
}

/** A failure with a stable code, an HTTP status and, for validation, the failing paths. */
export class Problem extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly errors: ConfigProblem[] | undefined;
  readonly extra: Record<string, unknown>;

  constructor(
    code: ProblemCode,
    detail: string,
    options: { errors?: ConfigProblem[]; extra?: Record<string, unknown> } = {},
  ) {
    super(detail);
    this.name = "Problem";
    this.code = code;
    this.status = TITLES[code][0];
    this.errors = options.errors;
    this.extra = options.extra ?? {};
  }

  toJSON(): ProblemBody {
    const body: ProblemBody = {
      type: `urn:turnout:problem:${this.code}`,
      title: TITLES[this.code][1],
      status: this.status,
      detail: this.message,
      ...this.extra,
    };
    if (this.errors) body.errors = this.errors;
    return body;
  }
}

/**
 * Parses request JSON, or throws the 400 `bad-request` problem every route answers for text that
 * is not JSON: `detail` says `<what> is not JSON`, the parser's message is under `path`.
 */
export function parseJsonOrProblem(text: string, what: string, path = "(root)"): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Problem("bad-request", `${what} is not JSON`, { errors: [{ path, message: (err as Error).message }] });
  }
}

/** Builds the `application/problem+json` response for a problem. */
export function problemResponse(problem: Problem, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(problem.toJSON()), {
    status: problem.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...headers },
  });
}
