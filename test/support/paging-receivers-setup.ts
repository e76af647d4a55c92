/**
 * Vitest global setup of the worker project: starts the paging receivers (paging-receivers.ts) in
 * Node, where a test in workerd cannot listen, and provides their URL to the tests
 * (`inject("pagingReceivers")`).
 */
import type { TestProject } from "vitest/node";
import { startPagingReceivers } from "./paging-receivers.ts";

declare module "vitest" {
  export interface ProvidedContext {
    pagingReceivers: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const receivers = await startPagingReceivers();
  project.provide("pagingReceivers", receivers.url);
  return () => receivers.close();
}
