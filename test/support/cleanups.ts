/** Per-test teardown for files that start clusters, proxies and fakes inside their tests. */
import { afterEach } from "vitest";

/** Registers an afterEach that runs what the test pushed, newest first; returns the push. */
export function useCleanups(): (cleanup: () => Promise<void>) => void {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return (cleanup) => {
    cleanups.push(cleanup);
  };
}
