/**
 * Operator API (design §3, §3a): `GET /v1/targets`, `GET /v1/targets/:name`,
 * `GET /v1/targets/:name/events`, `GET /v1/targets/:name/recording` for viewers, and
 * `POST /v1/targets/:name/commands` for operators. The audited actor is always the authenticated
 * identity; a body's `actor` is kept only as `onBehalfOf`. `force` never executes on one person's
 * word: it creates a break-glass request that a different operator confirms.
 */
import { Hono } from "hono";
import { z } from "zod";
import { formatIssues } from "../../shared/config.ts";
import { requireConfig } from "../config.ts";
import { CommandNameSchema } from "../engine/machine-types.ts";
import type { Env } from "../env.ts";
import { Problem, parseJsonOrProblem } from "../problem.ts";
import type { BreakGlassOutcome } from "../target/break-glass.ts";
import type { EventPage, TargetView } from "../target/target-object.ts";
import type { StepApprovalResult } from "../target/target-view.ts";
import { type Identity, identityOf, requireRole } from "./identity.ts";

/** Largest page of `GET /v1/targets/:name/events`. */
export const MAX_EVENTS_PAGE = 1000;

const EventsQuerySchema = z.object({
  after: z.coerce.number({ error: "expected an integer seq" }).int().min(0).default(0),
  limit: z.coerce.number({ error: "expected an integer" }).int().min(1).max(MAX_EVENTS_PAGE).default(100),
});

export const operatorApi = new Hono<{ Bindings: Env; Variables: { identity: Identity } }>();

// Reads are for viewers (and operators); the commands route asks for operator below.
operatorApi.on(["GET", "HEAD"], ["/v1/targets", "/v1/targets/*"], requireRole("viewer"));
operatorApi.post("/v1/targets/*", requireRole("operator"));

function knownTarget(env: Env, name: string): string {
  const config = requireConfig(env);
  if (!Object.hasOwn(config.targets, name)) throw new Problem("not-found", `no target named ${JSON.stringify(name)}`);
  return name;
}

/** Wraps a Durable Object call so a failure is a retryable 503, not a 500. */
export async function fromObject<T>(target: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "target object call failed", target, error: String(err) }));
    throw new Problem("unavailable", `target ${target} is unavailable; retry`);
  }
}

function pageQuery(c: { req: { query: (k: string) => string | undefined } }) {
  const query = EventsQuerySchema.safeParse({
    after: c.req.query("after") || undefined,
    limit: c.req.query("limit") || undefined,
  });
  if (!query.success) {
    throw new Problem("validation", "invalid query; see errors", { errors: formatIssues(query.error, ["query"]) });
  }
  return query.data;
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
  const { after, limit } = pageQuery(c);
  return c.json(await fromObject<EventPage>(name, () => c.env.TARGETS.getByName(name).events(after, limit)));
});

/**
 * `GET /v1/targets/:name/recording` (design §10): the recorded ingest bodies as `--webhooks`
 * NDJSON for `npm run simulate`. Pages with `after`/`limit` like the events; the next page's
 * `after` is in the `Turnout-Next` header (absent on the last page).
 */
operatorApi.get("/v1/targets/:name/recording", async (c) => {
  const name = knownTarget(c.env, c.req.param("name"));
  const { after, limit } = pageQuery(c);
  const page = await fromObject(name, () => c.env.TARGETS.getByName(name).recording(after, limit));
  const body = page.lines.map((l) => `${JSON.stringify(l)}\n`).join("");
  return c.body(body, 200, {
    "content-type": "application/x-ndjson; charset=utf-8",
    ...(page.next === undefined ? {} : { "turnout-next": String(page.next) }),
  });
});

/** The machine's commands, plus the shell's `clear` (signals) and `confirm` (break-glass). */
const COMMANDS = [...CommandNameSchema.options, "clear", "confirm"] as const;

/** The commands whose `force` is break-glass (design §3a, §5 rule 7). */
const FORCEABLE = ["failover", "failback", "approve", "retry"] as const;

const CommandBodySchema = z
  .object({
    command: z.enum(COMMANDS),
    reason: z.string().max(2000).optional(),
    /** Kept as `onBehalfOf`: the audited actor is the authenticated identity. */
    actor: z.string().min(1).max(200).optional(),
    force: z.boolean().optional(),
    mode: z.enum(["dry-run", "live"]).optional(),
    key: z.string().min(1).max(1000).optional(),
    request: z
      .string()
      .regex(/^[0-9a-f]{32}$/, "a break-glass request id (32 hex digits)")
      .optional(),
    /** `approve` only: the plan step waiting for approval (design §11.2). */
    step: z.string().min(1).max(200).optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.command === "clear" && b.key === undefined)
      ctx.addIssue({ code: "custom", path: ["key"], message: "required for clear: the stored signal's key" });
    if (b.command === "confirm" && b.request === undefined)
      ctx.addIssue({ code: "custom", path: ["request"], message: "required for confirm: the break-glass request id" });
    if (b.step !== undefined && b.command !== "approve")
      ctx.addIssue({ code: "custom", path: ["step"], message: "applies to approve only: the plan step to approve" });
    if (b.step !== undefined && b.force)
      ctx.addIssue({ code: "custom", path: ["force"], message: "a plan step's approval is never forced" });
    if (b.force && !(FORCEABLE as readonly string[]).includes(b.command))
      ctx.addIssue({ code: "custom", path: ["force"], message: `force applies to ${FORCEABLE.join(", ")} only` });
  });

/** A new break-glass request id: 128 random bits as hex. */
function requestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * `POST /v1/targets/:name/commands` (design §3): 200 with the new view, 202 for a break-glass
 * request awaiting a second operator, or 409 explaining why not.
 */
operatorApi.post("/v1/targets/:name/commands", async (c) => {
  const name = knownTarget(c.env, c.req.param("name"));
  const body = CommandBodySchema.safeParse(parseJsonOrProblem(await c.req.text(), "the command body"));
  if (!body.success) {
    throw new Problem("validation", "invalid command; see errors", { errors: formatIssues(body.error) });
  }
  const cmd = body.data;
  const who = identityOf(c);
  const stub = c.env.TARGETS.getByName(name);
  const onBehalfOf = cmd.actor !== undefined && cmd.actor !== who.name ? { onBehalfOf: cmd.actor } : {};

  if (cmd.command === "confirm") {
    const result = await fromObject<BreakGlassOutcome & { view: TargetView }>(name, () =>
      stub.resolveBreakGlass(name, {
        nonce: cmd.request ?? "",
        decision: "approve",
        actorId: who.name,
        actor: who.name,
      }),
    );
    return confirmAnswer(c, name, result);
  }

  if (cmd.command === "approve" && cmd.step !== undefined) {
    const step = cmd.step;
    const result = await fromObject(name, () =>
      stub.approveStep(name, {
        step,
        actor: who.name,
        ...(cmd.reason !== undefined ? { reason: cmd.reason } : {}),
      }),
    );
    return stepApprovalAnswer(c, name, result);
  }

  if (cmd.force === true && cmd.command !== "clear" && (FORCEABLE as readonly string[]).includes(cmd.command)) {
    // Two people for break-glass (design §3a): this records the request, and executes nothing.
    const id = requestId();
    const at = await fromObject(name, () =>
      stub.requestBreakGlass(name, {
        nonce: id,
        command: cmd.command as (typeof FORCEABLE)[number],
        requesterId: who.name,
        requester: who.name,
        reason: cmd.reason ?? "",
        via: "api",
      }),
    );
    return c.json(
      {
        pending: "break-glass",
        request: { id, command: cmd.command, target: name, by: who.name, expiresAt: at.expiresAt },
        detail: `forced ${cmd.command} recorded; a different operator confirms it with {"command": "confirm", "request": "${id}"} before ${at.expiresAt}`,
      },
      202,
    );
  }

  const result = await fromObject(name, () =>
    stub.command(name, {
      command: cmd.command as Exclude<(typeof COMMANDS)[number], "confirm">,
      actor: who.name,
      ...onBehalfOf,
      ...(cmd.reason !== undefined ? { reason: cmd.reason } : {}),
      ...(cmd.mode !== undefined ? { mode: cmd.mode } : {}),
      ...(cmd.key !== undefined ? { key: cmd.key } : {}),
    }),
  );
  if (!result.applied) {
    throw new Problem("conflict", result.rejected ?? `${cmd.command} does not apply now`, {
      extra: { target: name, phase: result.view.phase },
    });
  }
  return c.json({ applied: true, ...(result.warnings ? { warnings: result.warnings } : {}), target: result.view });
});

/**
 * Maps a step approval to HTTP: 200 once the agent has it; 409 for a step that is unknown, not
 * waiting, or approved before; 503 when the agent could not be reached (nothing was recorded).
 */
function stepApprovalAnswer(
  c: { json: (body: unknown, status?: 200) => Response },
  name: string,
  result: StepApprovalResult,
): Response {
  if (result.unavailable !== undefined) {
    throw new Problem(
      "unavailable",
      `the approval did not reach the agent, so nothing was approved; retry: ${result.unavailable}`,
      {
        extra: { target: name },
      },
    );
  }
  if (!result.applied) {
    throw new Problem("conflict", result.rejected ?? "approve does not apply now", {
      extra: { target: name, phase: result.view.phase },
    });
  }
  return c.json({ applied: true, forwarded: result.forwarded, target: result.view });
}

/** Maps a confirmation's outcome to HTTP: executed 200; the requester 403; unknown 404; else 409. */
function confirmAnswer(
  c: { json: (body: unknown, status?: 200) => Response },
  name: string,
  result: BreakGlassOutcome & { view: TargetView },
): Response {
  switch (result.outcome) {
    case "executed":
      return c.json({
        applied: true,
        confirmed: { command: result.command, requester: result.requester },
        ...(result.warnings ? { warnings: result.warnings } : {}),
        target: result.view,
      });
    case "self-approval":
      throw new Problem("forbidden", result.detail, { extra: { target: name } });
    case "unknown":
      throw new Problem("not-found", `no break-glass request with that id for ${name}`, { extra: { target: name } });
    case "rejected":
      throw new Problem("conflict", `confirmed, but the target refused it: ${result.reason}`, {
        extra: { target: name, phase: result.view.phase },
      });
    case "cancelled":
      throw new Problem("conflict", "the request was cancelled", { extra: { target: name } });
    default:
      throw new Problem("conflict", result.detail, { extra: { target: name, phase: result.view.phase } });
  }
}
