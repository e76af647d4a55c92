/**
 * The set-up of a test of the Slack routes in workerd: every outbound POST (response_url follow-ups,
 * notifications) captured and answered 200, the test response_url prefix allowed, and all of it
 * undone after each test.
 */
import { exports } from "cloudflare:workers";
import { afterEach, beforeEach, vi } from "vitest";
import { slackTesting } from "../../../worker/http/slack/respond.ts";
import { captureOutbound, type OutboundCapture, RESPONSE_PREFIX } from "../../slack/slack-client.ts";

/** Calls the worker under test, for `signedPost`. */
export const fetcher = (url: string, init: RequestInit) => exports.default.fetch(url, init);

/** Installs the capture around each test of the calling file; `outbound()` is the current test's. */
export function useSlackRoutes(): { outbound: () => OutboundCapture } {
  let outbound: OutboundCapture | undefined;
  beforeEach(() => {
    outbound = captureOutbound();
    slackTesting.responseUrlPrefix = RESPONSE_PREFIX;
  });
  afterEach(() => {
    vi.restoreAllMocks();
    delete slackTesting.responseUrlPrefix;
    delete slackTesting.ackDeadlineMs;
  });
  return {
    outbound: () => {
      if (!outbound) throw new Error("useSlackRoutes: outbound() is for use inside a test");
      return outbound;
    },
  };
}
