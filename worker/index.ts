/**
 * The turnout edge worker's entry (design §1): the Hono app, the TargetObject class and
 * scheduled(), which runs the drills due on a cron trigger (design §5b).
 */

import type { Env } from "./env.ts";
import { app } from "./http/app.ts";
import { runScheduledDrills } from "./target/drills.ts";

export { AgentObject } from "./agents/agent-object.ts";
export { ReplayGuard } from "./http/slack/replay-guard.ts";
export { TargetObject } from "./target/target-object.ts";

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    // Drills never throw (a refusal is audited and logged), so a failed invocation is never
    // retried into a second drill; waitUntil keeps the isolate alive until every command ran.
    ctx.waitUntil(runScheduledDrills(controller.cron, env));
  },
} satisfies ExportedHandler<Env>;
