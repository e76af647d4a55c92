/**
 * Vitest global setup of the worker project: starts the stand-in agent's `/healthz`
 * (agent-healthz-stub.ts) in Node, where a test in workerd cannot listen, and provides its URL
 * to the tests (`inject("agentHealthzStub")`).
 */
import type { TestProject } from "vitest/node";
import { startAgentHealthzStub } from "./agent-healthz-stub.ts";

declare module "vitest" {
  export interface ProvidedContext {
    agentHealthzStub: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stub = await startAgentHealthzStub();
  project.provide("agentHealthzStub", stub.url);
  return () => stub.close();
}
