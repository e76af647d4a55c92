/**
 * `POST /v1/actions` and `GET /v1/actions/:id` (design §6). Order of checks, each with its own
 * answer: signature on the RAW body (401, distinct reason) → JSON + zod (400 naming fields) →
 * unknown target (404) → follower (503 + Retry-After, so the sender retries and reaches the
 * leader) → same id (200 + current report, never a second run) → other id mid-action (409) →
 * 202 accepted, executing in the background.
 */
import type { Context, Hono } from "hono";
import type { z } from "zod";
import { type AgentConfig, formatIssues, ownTarget } from "../shared/config.ts";
import { ActionIdSchema, ActionRequestSchema, ApprovalRequestSchema, DEFAULT_AGENT } from "../shared/protocol.ts";
import { type QstashKeys, UPSTASH_SIGNATURE_HEADER, verifyUpstashSignature } from "../shared/qstash-signature.ts";
import { describeSignatureFailure, SIGNATURE_HEADER, verify } from "../shared/signature.ts";
import type { Leadership } from "./leadership.ts";
import type { Logger } from "./log.ts";
import type { ActionRunner } from "./runner.ts";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";
/** Same cap as the worker's (design §3). */
export const MAX_ACTION_BODY_BYTES = 1024 * 1024;

/** An `application/problem+json` response; `type` is `urn:turnout:problem:<code>` as on the worker. */
export function problem(
  status: number,
  code: string,
  title: string,
  detail: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify({ type: `urn:turnout:problem:${code}`, title, status, detail, ...extra }), {
    status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...headers },
  });
}

export interface ActionRoutesDeps {
  config: Pick<AgentConfig, "name" | "targets" | "lease" | "qstash">;
  runner: ActionRunner;
  leadership: Leadership;
  /** Turnout-Signature secrets: TURNOUT_AGENT_SECRET, then TURNOUT_AGENT_SECRET_NEXT (rotation). */
  secrets: readonly string[];
  /** Set when QSTASH_CURRENT_SIGNING_KEY is: Upstash-Signature is then accepted too. */
  qstash?: QstashKeys;
  /** Milliseconds since the epoch. */
  now?: () => number;
  log: Logger;
  /** False while shutting down: new actions get 503. */
  accepting?: () => boolean;
}

type Authenticated = { ok: true; via: "turnout" | "qstash" } | { ok: false; response: Response };

const unauthorized = (detail: string, reason: string): Authenticated => ({
  ok: false,
  response: problem(401, "unauthorized", "Unauthorized", detail, { reason }),
});

/**
 * Authenticates a request whose signed payload is `raw` (the body of a POST, the path of a GET).
 * Direct: a Turnout-Signature at most 300 s old. QStash (an Upstash-Signature is present and
 * QStash keys are configured): the Upstash-Signature with `sub` = `qstash.url` AND the forwarded
 * Turnout-Signature, which may then be `qstash.maxAgeSeconds` old because QStash retries for hours.
 * A valid Upstash-Signature alone runs nothing: anyone holding the QStash token could mint one.
 */
async function authenticate(
  c: Context,
  raw: string,
  deps: ActionRoutesDeps,
  options: { qstash: boolean },
): Promise<Authenticated> {
  const secrets = deps.secrets.filter((s) => s.length > 0);
  if (secrets.length === 0) {
    return unauthorized("this agent has no TURNOUT_AGENT_SECRET, so no request can be authenticated", "no-secret");
  }
  const upstash = c.req.header(UPSTASH_SIGNATURE_HEADER);
  // QStash delivers only POST /v1/actions; a GET is always the direct kind.
  const viaQstash = options.qstash && deps.qstash !== undefined && upstash !== undefined;
  // Present means checked, an empty value too: an empty header must not skip the Upstash check
  // while it still widens the replay window to qstash.maxAgeSeconds below.
  if (viaQstash && deps.qstash && upstash !== undefined) {
    const url = deps.config.qstash?.url;
    // startAgent refuses QStash keys without qstash.url; this guards other wirings.
    if (!url)
      return unauthorized("qstash.url is not configured, so no Upstash-Signature can be checked", "no-qstash-url");
    const check = await verifyUpstashSignature(deps.qstash, upstash, raw, url);
    if (!check.ok) return unauthorized(check.detail, check.reason);
  }
  const now = (deps.now ?? Date.now)();
  const maxAgeSeconds = viaQstash ? (deps.config.qstash?.maxAgeSeconds ?? 86_400) : undefined;
  const check = await verify(
    secrets,
    c.req.header(SIGNATURE_HEADER),
    raw,
    now / 1000,
    maxAgeSeconds === undefined ? {} : { maxAgeSeconds },
  );
  if (check.ok) return { ok: true, via: viaQstash ? "qstash" : "turnout" };
  const detail =
    check.reason === "expired" && maxAgeSeconds !== undefined
      ? `signature timestamp is more than ${maxAgeSeconds} s old (qstash.maxAgeSeconds)`
      : describeSignatureFailure(check.reason);
  return unauthorized(viaQstash ? `${detail} (the QStash path needs both signatures)` : detail, check.reason);
}

function validationProblem(error: z.ZodError, detail: string): Response {
  return problem(400, "validation", "Validation failed", detail, { errors: formatIssues(error) });
}

type SignedBody<T> = { ok: true; data: T; via: "turnout" | "qstash" } | { ok: false; response: Response };

/**
 * Reads a signed POST body in the order every agent route answers it: size (413) → signature on
 * the RAW bytes (401) → JSON (400) → `schema` (400 naming fields). `name` words the 400 detail;
 * `rejected` is the log line for a bad signature.
 */
async function readSignedBody<T>(
  c: Context,
  deps: ActionRoutesDeps,
  schema: z.ZodType<T>,
  options: { qstash: boolean; name: string; rejected: string },
): Promise<SignedBody<T>> {
  const tooLarge = (): SignedBody<T> => ({
    ok: false,
    response: problem(413, "payload-too-large", "Payload too large", `body over ${MAX_ACTION_BODY_BYTES} bytes`),
  });
  // The declared length refuses a large body unread; the read length catches a lying header.
  if (Number(c.req.header("content-length") ?? "0") > MAX_ACTION_BODY_BYTES) return tooLarge();
  const raw = await c.req.text();
  if (Buffer.byteLength(raw) > MAX_ACTION_BODY_BYTES) return tooLarge();
  const auth = await authenticate(c, raw, deps, { qstash: options.qstash });
  if (!auth.ok) {
    deps.log.warn(options.rejected, { status: 401 });
    return auth;
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, response: problem(400, "bad-request", "Bad request", "body is not JSON") };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return { ok: false, response: validationProblem(parsed.error, `invalid ${options.name}`) };
  return { ok: true, data: parsed.data, via: auth.via };
}

/** Adds the action routes to the agent's app. */
export function registerActionRoutes(app: Hono, deps: ActionRoutesDeps): void {
  app.post("/v1/actions", async (c) => {
    const read = await readSignedBody(c, deps, ActionRequestSchema, {
      qstash: true,
      name: "ActionRequest",
      rejected: "action request rejected: signature",
    });
    if (!read.ok) return read.response;
    const { data: request, via } = read;
    // Final, before anything runs: the worker placed this action on another agent (design §11.1),
    // and running it here would give one action id two executors.
    const self = deps.config.name;
    const addressee = request.agent ?? DEFAULT_AGENT;
    if (addressee !== self) {
      deps.log.warn("action request refused: addressed to another agent", {
        action: request.id,
        target: request.target,
        agent: addressee,
        self,
      });
      return problem(
        421,
        "wrong-agent",
        "Misdirected request",
        `action ${request.id} is addressed to agent ${JSON.stringify(addressee)}; this is agent ${JSON.stringify(self)}`,
        { agent: addressee, self },
      );
    }

    if (ownTarget(deps.config.targets, request.target) === undefined) {
      return problem(404, "not-found", "Not found", `unknown target ${JSON.stringify(request.target)}`, {
        target: request.target,
      });
    }
    if (!request.id.startsWith(`${request.target}:`)) {
      return problem(400, "validation", "Validation failed", "id must be <target>:<epoch> for this target", {
        errors: [{ path: "id", message: `expected "${request.target}:<epoch>"` }],
      });
    }
    const retryAfter = String(deps.config.lease.durationSeconds);
    const shuttingDown = () =>
      problem(
        503,
        "unavailable",
        "Service unavailable",
        "the agent is shutting down",
        {},
        { "retry-after": retryAfter },
      );
    if (!deps.leadership.isLeader()) {
      const state = deps.leadership.state();
      return problem(
        503,
        "not-leader",
        "Not the leader",
        `this replica is standing by (${state.detail}); retry to reach the Lease holder`,
        state.holder ? { holder: state.holder } : {},
        { "retry-after": retryAfter },
      );
    }
    if (!deps.runner.isAccepting() || (deps.accepting && !deps.accepting())) {
      return shuttingDown();
    }

    const result = await deps.runner.submit(request);
    switch (result.outcome) {
      case "accepted":
        deps.log.info("action accepted", {
          action: request.id,
          target: request.target,
          kind: request.kind,
          dryRun: request.dryRun,
          via,
        });
        return c.json({ id: request.id, status: "accepted" }, 202);
      case "duplicate":
        return c.json(result.report, 200);
      case "conflict":
        return problem(
          409,
          "conflict",
          "Conflict",
          `target ${request.target} is executing action ${result.runningId}`,
          { runningActionId: result.runningId },
        );
      case "stale":
        // Final: a replayed or overtaken action must never run after a newer one (design §6).
        return problem(
          409,
          "stale-epoch",
          "Stale action",
          `action ${request.id} is older than ${result.latestId}, the latest this agent accepted for ${request.target}`,
          { latestActionId: result.latestId },
        );
      case "unknown-target":
        return problem(404, "not-found", "Not found", `unknown target ${JSON.stringify(request.target)}`);
      case "stopping":
        return shuttingDown();
      case "no-executor":
        return problem(
          503,
          "unavailable",
          "Service unavailable",
          `no executor for kind ${result.kind} is built into this agent`,
        );
    }
  });

  // Design §11.6: the worker forwards an operator's approval of a waiting plan step, signed like
  // every worker→agent request. 200 approved; 409 approved before (done, for the worker) or not
  // waiting; 404 an action or step this agent does not know.
  app.post("/v1/actions/:id/approvals", async (c) => {
    const read = await readSignedBody(c, deps, ApprovalRequestSchema, {
      qstash: false,
      name: "approval",
      rejected: "approval rejected: signature",
    });
    if (!read.ok) return read.response;
    const approval = read.data;
    if (approval.actionId !== c.req.param("id")) {
      return problem(400, "validation", "Validation failed", "actionId must equal the action id in the path", {
        errors: [{ path: "actionId", message: `expected ${JSON.stringify(c.req.param("id"))}` }],
      });
    }
    if (!deps.leadership.isLeader()) {
      return problem(
        503,
        "not-leader",
        "Not the leader",
        "this replica is standing by; retry to reach the Lease holder",
        {},
        { "retry-after": String(deps.config.lease.durationSeconds) },
      );
    }
    const result = await deps.runner.approve(approval);
    switch (result.outcome) {
      case "approved":
        return c.json(
          { actionId: approval.actionId, step: approval.step, status: "approved", ...result.approval },
          200,
        );
      case "already-approved":
        return problem(
          409,
          "already-approved",
          "Already approved",
          `step ${approval.step} was approved by ${result.approval.by} at ${result.approval.at}`,
          {
            step: approval.step,
            by: result.approval.by,
            at: result.approval.at,
          },
        );
      case "not-waiting":
        return problem(
          409,
          "not-waiting",
          "Not waiting",
          `step ${approval.step} is ${result.status}, not waiting for an approval`,
          {
            step: approval.step,
            status: result.status,
          },
        );
      case "unknown-step":
        return problem(
          404,
          "not-found",
          "Not found",
          `action ${approval.actionId} has no step ${JSON.stringify(approval.step)}`,
        );
      case "unknown-action":
        return problem(404, "not-found", "Not found", `unknown action ${JSON.stringify(approval.actionId)}`);
    }
  });

  app.get("/v1/actions/:id", async (c) => {
    // No body to sign: the signature covers the path exactly as sent (design §6).
    const auth = await authenticate(c, new URL(c.req.url).pathname, deps, { qstash: false });
    if (!auth.ok) {
      deps.log.warn("report request rejected: signature", { status: 401 });
      return auth.response;
    }
    const id = c.req.param("id");
    const parsed = ActionIdSchema.safeParse(id);
    if (!parsed.success) return validationProblem(parsed.error, "invalid action id");
    const report = await deps.runner.report(parsed.data);
    if (!report) return problem(404, "not-found", "Not found", `unknown action ${JSON.stringify(id)}`);
    return c.json(report, 200);
  });
}
