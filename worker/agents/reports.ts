/**
 * The agent's way back (design §6, §11.1): `POST /v1/agent/reports` (Turnout-Signature verified
 * on the raw body before parsing, with the key of the agent named by `Turnout-Agent`; a report for
 * an action dispatched to another agent is 403) and QStash's failure callback
 * `POST /v1/agent/reports/qstash-failure` (Upstash-Signature).
 */
import { Hono } from "hono";
import { DEFAULT_AGENT_NAME } from "../../shared/config.ts";
import { qstashKeysFromEnv } from "../../shared/qstash-signature.ts";
import { requireConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { Problem } from "../problem.ts";
import { AGENT_HEADER, agentKeys, agentOfHeader } from "./agent-keys.ts";
import {
  QSTASH_FAILURE_PATH,
  qstashFailureCallbackUrl,
  verifyAgentReport,
  verifyQstashFailureCallback,
} from "./transport.ts";

export const agentReports = new Hono<{ Bindings: Env }>();

agentReports.post("/v1/agent/reports", async (c) => {
  const raw = await c.req.text();
  // Design §11.1: the key is the one of the agent the Turnout-Agent header names (absent:
  // default), checked on the raw bytes before anything is parsed.
  const agent = agentOfHeader(c.req.raw.headers);
  const secrets = agent === undefined ? [] : (agentKeys(c.env).byAgent.get(agent) ?? []);
  if (secrets.length === 0) {
    throw new Problem(
      "unauthorized",
      `unknown agent in ${AGENT_HEADER}, or no key configured for it; reports are refused`,
    );
  }
  const checked = await verifyAgentReport(raw, c.req.raw.headers, secrets, Date.now());
  if (!checked.ok) {
    if (checked.status === 401)
      throw new Problem("unauthorized", checked.detail, { extra: { reason: checked.reason } });
    throw new Problem("validation", checked.detail, checked.errors ? { errors: checked.errors } : {});
  }
  const report = checked.report;
  const config = requireConfig(c.env);
  if (!Object.hasOwn(config.targets, report.target)) {
    // A final answer (not 5xx) so the agent stops re-sending; the mismatch is logged for people.
    console.warn(
      JSON.stringify({
        level: "warn",
        msg: "report for an unknown target",
        target: report.target,
        action: report.actionId,
      }),
    );
    return c.json({ accepted: false, reason: `no target named ${JSON.stringify(report.target)}` });
  }
  let refusal: string;
  try {
    const stub = c.env.TARGETS.getByName(report.target);
    const { accepted, refused } = await stub.report(report.target, report, agent ?? DEFAULT_AGENT_NAME);
    if (refused) {
      refusal = `${report.actionId} was not dispatched to agent ${agent}; refused and audited (report.refused)`;
    } else {
      return c.json({ accepted, ...(accepted ? {} : { reason: "not the current action; audited and ignored" }) });
    }
  } catch (err) {
    console.error(
      JSON.stringify({ level: "error", msg: "report delivery failed", target: report.target, error: String(err) }),
    );
    throw new Problem("unavailable", `target ${report.target} is unavailable; retry`);
  }
  throw new Problem("forbidden", refusal, { extra: { target: report.target, agent } });
});

agentReports.post(QSTASH_FAILURE_PATH, async (c) => {
  const raw = await c.req.text();
  const keys = qstashKeysFromEnv(c.env);
  if (!keys) throw new Problem("unauthorized", "QSTASH_CURRENT_SIGNING_KEY is not configured; callbacks are refused");
  const config = requireConfig(c.env);
  const url = config.publicUrl ? qstashFailureCallbackUrl(config.publicUrl) : undefined;
  const checked = await verifyQstashFailureCallback(raw, c.req.raw.headers, keys, url);
  if (!checked.ok) {
    throw new Problem(checked.status === 401 ? "unauthorized" : "validation", checked.detail, {
      extra: { reason: checked.reason },
    });
  }
  const request = checked.request;
  if (!request || !Object.hasOwn(config.targets, request.target)) {
    return c.json({ accepted: false, reason: "callback names no known action" });
  }
  try {
    await c.env.TARGETS.getByName(request.target).deliveryFailed(
      request.target,
      request.id,
      checked.agentStatus === 421
        ? `the agent refused an action addressed to ${request.agent ?? DEFAULT_AGENT_NAME} (421 wrong-agent)`
        : `QStash gave up delivering to the agent (last status ${checked.agentStatus})`,
      ...(checked.agentStatus === 421 ? (["wrong-agent"] as const) : []),
    );
  } catch (err) {
    console.error(
      JSON.stringify({
        level: "error",
        msg: "failure callback delivery failed",
        target: request.target,
        error: String(err),
      }),
    );
    // 5xx: QStash retries its callback.
    throw new Problem("unavailable", `target ${request.target} is unavailable; retry`);
  }
  return c.json({ accepted: true });
});
