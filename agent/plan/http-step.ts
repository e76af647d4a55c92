/**
 * `http` (design §11.2): a request to an API that is not Kubernetes (a load balancer pool, a
 * feature flag). Every request carries `Idempotency-Key: <action id>:<step name>`. Its answer is
 * recorded in durable memory before the step succeeds, and a recorded answer is never sent
 * again; a crash mid-request leaves nothing recorded, so the resumed step sends again with the
 * same key and a receiver that honours it sees one effect. In a drill nothing is sent: the
 * report shows the request it would send, with the values from `headersEnv` masked.
 */
import type { PlanStep } from "../../shared/config.ts";
import { type DurableMemory, type StepContext, StepError, type StepOutcome } from "../executor.ts";

export type HttpStep = NonNullable<PlanStep["http"]>;

/** The header naming one effect: the receiver does it once per key. */
export const IDEMPOTENCY_KEY = "Idempotency-Key";
const MASK = "***";
/** An answer's text kept in memory and shown in the report, at most this long. */
const EXCERPT = 200;

/** A recorded answer. */
export interface HttpAnswer {
  status: number;
  body: string;
  at: string;
}

export interface HttpStepRun {
  ctx: StepContext;
  name: string;
  step: HttpStep;
  memory: DurableMemory;
  dryRun: boolean;
  env: Record<string, string | undefined>;
  timeoutMs: number;
  fetch?: typeof fetch;
}

/** Runs an `http` step toward `ctx.action.to`. */
export async function runHttpStep(run: HttpStepRun): Promise<StepOutcome> {
  const { ctx, step } = run;
  const key = `${ctx.action.id}:${run.name}`;
  const line = `${step.method} ${step.url}`;
  const recorded = await run.memory.get<HttpAnswer>("answer");
  if (recorded) return { detail: `${line} answered ${recorded.status} at ${recorded.at} (recorded; not sent again)` };

  const body = step.body === undefined ? undefined : JSON.stringify(step.body[ctx.action.to]);
  const shown: Record<string, string> = { ...step.headers, [IDEMPOTENCY_KEY]: key };
  const headers: Record<string, string> = { ...step.headers, [IDEMPOTENCY_KEY]: key };
  if (body !== undefined) headers["content-type"] = shown["content-type"] = "application/json";
  const missing: string[] = [];
  for (const [name, envName] of Object.entries(step.headersEnv)) {
    shown[name] = MASK;
    const value = run.env[envName];
    if (value === undefined || value === "") missing.push(envName);
    else headers[name] = value;
  }
  const request = `${line} headers ${JSON.stringify(shown)}${body === undefined ? "" : ` body ${body}`}`;
  if (run.dryRun) return { detail: `dry run: not sent: ${request}` };
  if (missing.length)
    throw new StepError("config", `${line}: environment variable ${missing.join(", ")} is not set; nothing sent`);

  let res: Response;
  try {
    res = await (run.fetch ?? fetch)(step.url, {
      method: step.method,
      headers,
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(run.timeoutMs)]),
    });
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    // Not recorded: a retry of this action sends again with the same key.
    throw new StepError("http-unreachable", `${line}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const text = (await res.text()).slice(0, EXCERPT);
  if (res.status !== step.expectStatus) {
    throw new StepError("http-status", `${line} answered ${res.status}, expected ${step.expectStatus}: ${text}`);
  }
  const answer: HttpAnswer = { status: res.status, body: text, at: new Date(ctx.now()).toISOString() };
  await run.memory.set("answer", answer);
  return { detail: `${line} answered ${res.status}${text ? `: ${text}` : ""}` };
}
