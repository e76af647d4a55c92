/**
 * One probe as the stand-in agent (agent-healthz-stub.ts) saw it. Apart, with no imports, so that
 * the workerd tests can read it without pulling Node's libraries into the worker's type program.
 */
export interface ProbeReceived {
  method: string;
  path: string;
  headers: Record<string, string>;
}
