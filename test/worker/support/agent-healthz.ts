/**
 * The stand-in agent's `/healthz` (test/support/agent-healthz-stub.ts, started by the worker
 * project's global setup) as the workerd tests reach it: a fresh name per test, its mode, and the
 * probes it received, over real HTTP.
 */
import { inject } from "vitest";
import type { ProbeReceived } from "../../support/probe-received.ts";

declare module "vitest" {
  export interface ProvidedContext {
    agentHealthzStub: string;
  }
}

let counter = 0;

/** One stand-in agent, down until a test raises it. */
export interface StubAgent {
  /** The agent's base URL, for `agents.<name>.url`. */
  url: string;
  mode(mode: "up" | "down"): Promise<void>;
  probes(): Promise<ProbeReceived[]>;
}

/** A stand-in agent under a name unique to this run. */
export function stubAgent(label: string): StubAgent {
  const base = inject("agentHealthzStub");
  counter += 1;
  const name = `${label}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
  return {
    url: `${base}/a/${name}`,
    async mode(mode) {
      const res = await fetch(`${base}/control/${name}/mode`, { method: "POST", body: JSON.stringify({ mode }) });
      await res.body?.cancel();
    },
    async probes() {
      return (await (await fetch(`${base}/control/${name}/log`)).json()) as ProbeReceived[];
    },
  };
}
