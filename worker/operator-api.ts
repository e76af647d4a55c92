/**
 * Operator API (design §3): `GET /v1/targets`, `GET /v1/targets/:name` and
 * `GET /v1/targets/:name/events?after=&limit=`, all behind `Authorization: Bearer $OPERATOR_TOKEN`.
 */
import { Hono } from "hono";
import { z } from "zod";
import { formatIssues } from "../shared/config.ts";
import { requireBearer } from "./auth.ts";
import { requireConfig } from "./config.ts";
import type { Env } from "./env.ts";
import { Problem, parseJsonOrProblem } from "./problem.ts";
import type { EventPage, TargetView } from "./target-object.ts";

/** Largest page of `GET /v1/targets/:name/events`. */
export const MAX_EVENTS_PAGE = 1000;

const EventsQuerySchema = z.object({
  after: z.coerce.number({ error: "expected an integer seq" }).int().min(0).default(0),
  limit: z.coerce.number({ error: "expected an integer" }).int().min(1).max(MAX_EVENTS_PAGE).default(100),
});

export const operatorApi = new Hono<{ Bindings: Env }>();

operatorApi.use("/v1/targets", requireBearer("OPERATOR_TOKEN"));
operatorApi.use("/v1/targets/*", requireBearer("OPERATOR_TOKEN"));

function knownTarget(env: Env, name: string): string {
  const config = requireConfig(env);
  if (!Object.hasOwn(config.targets, name)) throw new Problem("not-found", `no target named ${JSON.stringify(name)}`);
  return name;
}

/** Wraps a Durable Object call so a failure is a retryable 503, not a 500. */
async function fromObject<T>(target: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "target object call failed", target, error: String(err) }));
    throw new Problem("unavailable", `target ${target} is unavailable; retry`);
  }
}

operatorApi.get("/v1/targets", async (c) => {
  const config = requireConfig(c.env);
  const targets = await Promise.all(
    Object.keys(config.targets)
      .sort()
      .map((name) => fromObject<TargetView>(name, () => c.env.TARGETS.getByName(name).view(name, { events: false }))),
  );
  return c.json({ targets });
});

operatorApi.get("/v1/targets/:name", async (c) => {
  const name = knownTarget(c.env, c.req.param("name"));
  return c.json(await fromObject<TargetView>(name, () => c.env.TARGETS.getByName(name).view(name)));
});

operatorApi.get("/v1/targets/:name/events", async (c) => {
  const name = knownTarget(c.env, c.req.param("name"));
  const query = EventsQuerySchema.safeParse({
    after: c.req.query("after") || undefined,
    limit: c.req.query("limit") || undefined,
  });
  if (!query.success) {
    throw new Problem("validation", "invalid query; see errors", { errors: formatIssues(query.error, ["query"]) });
  }
  const { after, limit } = query.data;
  return c.json(await fromObject<EventPage>(name, () => c.env.TARGETS.getByName(name).events(after, limit)));
});

const CommandBodySchema = z
  .object({
    command: z.enum(["failover", "failback", "approve", "cancel", "pause", "resume", "drill", "retry"]),
    reason: z.string().max(2000).optional(),
    actor: z.string().min(1).max(200).optional(),
    force: z.boolean().optional(),
    mode: z.enum(["dry-run", "live"]).optional(),
  })
  .strict();

/** `POST /v1/targets/:name/commands` (design §3): 200 with the new view, or 409 explaining why not. */
operatorApi.post("/v1/targets/:name/commands", async (c) => {
  const name = knownTarget(c.env, c.req.param("name"));
  const body = CommandBodySchema.safeParse(parseJsonOrProblem(await c.req.text(), "the command body"));
  if (!body.success) {
    throw new Problem("validation", "invalid command; see errors", { errors: formatIssues(body.error) });
  }
  const cmd = body.data;
  const result = await fromObject(name, () =>
    c.env.TARGETS.getByName(name).command(name, {
      command: cmd.command,
      ...(cmd.reason !== undefined ? { reason: cmd.reason } : {}),
      actor: cmd.actor ?? "operator-api",
      ...(cmd.force !== undefined ? { force: cmd.force } : {}),
      ...(cmd.mode !== undefined ? { mode: cmd.mode } : {}),
    }),
  );
  if (!result.applied) {
    throw new Problem("conflict", result.rejected ?? `${cmd.command} does not apply now`, {
      extra: { target: name, phase: result.view.phase },
    });
  }
  return c.json({ applied: true, target: result.view });
});
