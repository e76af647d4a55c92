/**
 * One request as the paging receivers (paging-receivers.ts) saw it. Apart, with no imports, so
 * that the workerd tests can read it without pulling the receivers' Node-only libraries into the
 * worker's type program.
 */
/** One request as a receiver saw it. */
export interface Received {
  api: "pagerduty" | "opsgenie-create" | "opsgenie-close" | "webhook" | "unknown";
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: string;
  /** The parsed JSON body (null when it was not JSON). */
  json: unknown;
  valid: boolean;
  errors: string[];
  /** Path parameter of an Opsgenie close, decoded. */
  alias?: string;
}
