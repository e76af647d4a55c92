/**
 * The turnout edge worker's entry (design §1): the Hono app, the TargetObject class and, with the
 * drills issue, scheduled().
 */
import { app } from "./app.ts";
import type { Env } from "./env.ts";

export { TargetObject } from "./target-object.ts";

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
