/**
 * Ingest endpoints (design §3, §4): `POST /v1/alertmanager` and `POST /v1/nagios`. Each body is
 * normalized to signals, routed to (target, side) and delivered to every affected TargetObject
 * concurrently. Any failed delivery answers 503 so Alertmanager retries; dedupe makes the
 * re-delivery to the objects that did succeed harmless.
 */
import { Hono } from "hono";
import type { ConfigProblem, WorkerConfig } from "../../../shared/config.ts";
import { requireConfig } from "../../config.ts";
import { routeLabels } from "../../engine/routing.ts";
import type { Delivery, IngestBatch, IngestResult, IngestWarning, Json, Signal } from "../../engine/signals.ts";
import type { Env } from "../../env.ts";
import { Problem, parseJsonOrProblem } from "../../problem.ts";
import { requireBearer } from "../auth.ts";
import { parseAlertmanager } from "./alertmanager.ts";
import { formFields, parseNagios } from "./nagios.ts";

/** `200` body of both ingest endpoints (design §3). */
export interface IngestResponse extends IngestResult {
  /** Targets the webhook's signals were routed to, sorted. */
  targets: string[];
}

export const ingestRoutes = new Hono<{ Bindings: Env }>();

function invalid(what: string, errors: ConfigProblem[]): Problem {
  return new Problem("validation", `the ${what} body is invalid; see errors`, { errors });
}

/**
 * The body as UTF-8 text. Read as bytes: workerd warns when `.text()` meets a form content type.
 */
async function bodyText(req: Request): Promise<string> {
  return new TextDecoder().decode(await req.arrayBuffer());
}

/** Routes each signal and delivers per target; unrouted signals count as `ignored`. */
async function deliver(
  env: Env,
  config: WorkerConfig,
  signals: readonly Signal[],
  warnings: readonly IngestWarning[],
  receivedAt: number,
  recording: IngestBatch["recording"],
): Promise<IngestResponse> {
  const perTarget = new Map<string, Delivery[]>();
  let unrouted = 0;
  for (const signal of signals) {
    const routes = routeLabels(config, signal.labels);
    if (routes.length === 0) unrouted += 1;
    for (const { target, side } of routes) {
      const list = perTarget.get(target) ?? [];
      list.push({ side, signal });
      perTarget.set(target, list);
    }
  }
  const targets = [...perTarget.keys()].sort();
  const settled = await Promise.allSettled(
    targets.map((target) =>
      env.TARGETS.getByName(target).ingest({
        target,
        receivedAt,
        deliveries: perTarget.get(target) ?? [],
        warnings: [...warnings],
        // Only `record: true` targets keep the body (design §10); others are not sent it.
        ...(recording && config.targets[target]?.record ? { recording } : {}),
      }),
    ),
  );
  const total: IngestResponse = { accepted: 0, duplicates: 0, ignored: unrouted, targets };
  const failed: string[] = [];
  settled.forEach((outcome, i) => {
    const target = targets[i] ?? "?";
    if (outcome.status === "rejected") {
      failed.push(target);
      console.error(
        JSON.stringify({ level: "error", msg: "ingest delivery failed", target, error: String(outcome.reason) }),
      );
      return;
    }
    total.accepted += outcome.value.accepted;
    total.duplicates += outcome.value.duplicates;
    total.ignored += outcome.value.ignored;
  });
  if (warnings.length > 0 && targets.length === 0) {
    console.warn(JSON.stringify({ level: "warn", msg: "ingest warning for an unrouted webhook", warnings }));
  }
  if (failed.length > 0) {
    // 503, never 429: Alertmanager retries only 5xx (wire-formats §a); re-delivery is deduplicated.
    throw new Problem("unavailable", `could not record signals for target(s) ${failed.join(", ")}; retry`, {
      extra: { failedTargets: failed, recordedTargets: targets.filter((t) => !failed.includes(t)) },
    });
  }
  return total;
}

ingestRoutes.post("/v1/alertmanager", requireBearer("ALERTMANAGER_TOKEN"), async (c) => {
  const config = requireConfig(c.env);
  const body = parseJsonOrProblem(await bodyText(c.req.raw), "the Alertmanager body");
  const receivedAt = Date.now();
  const parsed = parseAlertmanager(body, receivedAt);
  if (!parsed.ok) throw invalid("Alertmanager", parsed.errors);
  const recording = { source: "alertmanager" as const, body: body as Json };
  return c.json(await deliver(c.env, config, parsed.signals, parsed.warnings, receivedAt, recording));
});

ingestRoutes.post("/v1/nagios", requireBearer("NAGIOS_TOKEN"), async (c) => {
  const config = requireConfig(c.env);
  const contentType = (c.req.header("content-type") ?? "").toLowerCase();
  const text = await bodyText(c.req.raw);
  let body: unknown;
  if (contentType.includes("application/x-www-form-urlencoded")) {
    body = formFields(text);
  } else if (contentType === "" || contentType.includes("json")) {
    body = parseJsonOrProblem(text, "the Nagios body");
  } else {
    throw new Problem(
      "unsupported-media-type",
      "send application/x-www-form-urlencoded fields or a JSON object keyed by macro name",
    );
  }
  const receivedAt = Date.now();
  const parsed = parseNagios(body, receivedAt);
  if (!parsed.ok) throw invalid("Nagios", parsed.errors);
  // Recorded as received: the form string for form bodies (design §10).
  const recording = {
    source: "nagios" as const,
    body: (contentType.includes("form") ? text : body) as Json,
  };
  return c.json(await deliver(c.env, config, [parsed.signal], [], receivedAt, recording));
});
