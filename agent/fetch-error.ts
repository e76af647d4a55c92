/**
 * Node's fetch (undici) reports every transport failure as `TypeError: fetch failed` and puts the
 * reason in `err.cause` (`connect ECONNREFUSED 127.0.0.1:443`, `getaddrinfo ENOTFOUND host`,
 * `bad port`, `other side closed` with code UND_ERR_SOCKET). An error text built from
 * `err.message` alone says nothing a person can act on, so callers describe the error with this.
 */

function causeText(cause: Error): string {
  const code = (cause as { code?: unknown }).code;
  // Happy-eyeballs connects fail with an AggregateError whose own message may be empty.
  let text =
    cause.message ||
    (cause instanceof AggregateError
      ? cause.errors.map((e) => (e instanceof Error ? e.message : String(e))).join("; ")
      : "");
  if (typeof code === "string" && code && !text.includes(code)) text = text ? `${text} (${code})` : code;
  return text;
}

/** `fetch failed: connect ECONNREFUSED 127.0.0.1:8080`: the error's message with its cause's. */
export function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (!(err.cause instanceof Error)) return err.message;
  const cause = causeText(err.cause);
  return cause && !err.message.includes(cause) ? `${err.message}: ${cause}` : err.message;
}
