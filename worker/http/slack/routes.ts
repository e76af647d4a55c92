/**
 * Slack endpoints (design §3, §5b): `POST /v1/slack/commands` (the `/turnout` slash command) and
 * `POST /v1/slack/interactions` (approve / cancel buttons).
 *
 * Order of work, for both: read the raw body, verify `X-Slack-Signature` over it (401
 * problem+json naming the reason, before any parsing), answer a replayed signature 200 "already
 * handled" (replay-guard.ts), then parse, and refuse another workspace (`chatops.slack.teamId`). The one exception is Slack's
 * unsigned `ssl_check=1` probe on the command URL ("do not require x-slack-signature
 * verification", wire-formats §c), answered 200 only when the body is exactly such a probe.
 * Answers are 200 Block Kit JSON within Slack's 3 s; work that takes longer, and every follow-up,
 * is posted to `response_url` from `waitUntil`.
 */
import { type Context, Hono } from "hono";
import { formatIssues, type WorkerConfig } from "../../../shared/config.ts";
import { loadConfig } from "../../config.ts";
import type { Env } from "../../env.ts";
import { Problem, parseJsonOrProblem } from "../../problem.ts";
import { ephemeral, type SlackMessage } from "../../target/slack-blocks.ts";
import { workspaceRefusal } from "./authorize.ts";
import { runSlashCommand, SlashCommandBodySchema } from "./commands.ts";
import { type BlockActions, BlockActionsSchema, runInteraction } from "./interactions.ts";
import { replayWindowEnd, SLACK_REPLAY_GUARD_NAME } from "./replay-guard.ts";
import { answerWithin, postToResponseUrl, type SlackEnv } from "./respond.ts";
import { describeSlackFailure, verifySlackSignature } from "./signature.ts";

export const slackRoutes = new Hono<{ Bindings: Env }>();

type SlackContext = Context<{ Bindings: Env }>;

/** True only for Slack's unsigned SSL probe: `ssl_check=1` plus at most its `token`. */
export function isSslCheck(raw: string): boolean {
  if (raw.length > 512 || !/^[A-Za-z0-9_=&%.-]*$/.test(raw)) return false;
  const params = new URLSearchParams(raw);
  const keys = [...params.keys()];
  return (
    params.getAll("ssl_check").length === 1 &&
    params.get("ssl_check") === "1" &&
    keys.every((k) => k === "ssl_check" || k === "token") &&
    params.getAll("token").length <= 1
  );
}

/**
 * The raw body once its Slack signature checks out (otherwise a 401 problem naming why), and
 * whether this is the signature's first sight: a replay within the window is `replay: true`.
 */
async function verifiedBody(c: SlackContext, raw: string): Promise<{ raw: string; replay: boolean }> {
  const signature = c.req.header("x-slack-signature");
  const timestamp = c.req.header("x-slack-request-timestamp");
  const check = await verifySlackSignature(
    c.env.SLACK_SIGNING_SECRET,
    { signature, timestamp },
    raw,
    Date.now() / 1000,
  );
  if (!check.ok || !signature || !timestamp) {
    const reason = check.ok ? "missing" : check.reason;
    throw new Problem("unauthorized", describeSlackFailure(reason), { extra: { reason } });
  }
  let first: boolean;
  try {
    first = await c.env.SLACK_REPLAY.getByName(SLACK_REPLAY_GUARD_NAME).firstSight(
      signature,
      replayWindowEnd(Number(timestamp)),
    );
  } catch (err) {
    // Fail closed: without the seen set a replay cannot be told from a first request.
    console.error(JSON.stringify({ level: "error", msg: "slack: replay guard unavailable", error: String(err) }));
    throw new Problem("unavailable", "the Slack replay guard is unavailable; try again");
  }
  if (!first) console.warn(JSON.stringify({ level: "warn", msg: "slack: replayed request ignored", path: c.req.path }));
  return { raw, replay: !first };
}

/** The answer to a replayed request: 200, as Slack expects, and nothing done. */
const ALREADY_HANDLED = ephemeral("already handled: this request was received before; nothing was done again");

/** The config, or an ephemeral explanation: Slack shows a non-200 answer only as "failed". */
function configOrMessage(env: Env): WorkerConfig | SlackMessage {
  const loaded = loadConfig(env);
  if (loaded.ok) return loaded.value;
  return ephemeral(
    `:warning: the turnout configuration (${loaded.source}) is invalid, so no command can run: ${loaded.problems
      .slice(0, 3)
      .map((p) => `${p.path}: ${p.message}`)
      .join("; ")}`,
  );
}

function isMessage(x: WorkerConfig | SlackMessage): x is SlackMessage {
  return "response_type" in x;
}

function waitUntil(c: SlackContext): (p: Promise<unknown>) => void {
  return (p) => {
    try {
      c.executionCtx.waitUntil(p);
    } catch {
      // No execution context (app.request in a unit test): let the promise run unattended.
      void p;
    }
  };
}

/** The raw body as UTF-8 (Slack signs these exact bytes; `.text()` warns on form bodies in workerd). */
async function rawBody(c: SlackContext): Promise<string> {
  return new TextDecoder().decode(await c.req.arrayBuffer());
}

slackRoutes.post("/v1/slack/commands", async (c) => {
  const raw = await rawBody(c);
  if (isSslCheck(raw)) return c.body(null, 200);
  if ((await verifiedBody(c, raw)).replay) return c.json(ALREADY_HANDLED);
  const parsed = SlashCommandBodySchema.safeParse(Object.fromEntries(new URLSearchParams(raw)));
  if (!parsed.success) {
    throw new Problem("validation", "invalid slash command body; see errors", {
      errors: formatIssues(parsed.error, ["body"]),
    });
  }
  const body = parsed.data;
  const config = configOrMessage(c.env);
  if (isMessage(config)) return c.json(config);
  const otherTeam = workspaceRefusal(config, body.team_id);
  if (otherTeam) return c.json(ephemeral(`:no_entry: ${otherTeam}`));
  const env = c.env as SlackEnv;
  const message = await answerWithin(
    runSlashCommand(c.env, config, body),
    ephemeral(`:hourglass_flowing_sand: working on \`/turnout ${body.text.trim()}\`; the answer follows here`),
    (later) => postToResponseUrl(env, body.response_url, later),
    waitUntil(c),
  );
  return c.json(message);
});

/** The answer to a verified click: the config's explanation, another workspace's refusal, or the click's own. */
async function interactionAnswer(env: Env, payload: BlockActions): Promise<SlackMessage> {
  const config = configOrMessage(env);
  if (isMessage(config)) return config;
  const otherTeam = workspaceRefusal(config, payload.team?.id ?? payload.user.team_id);
  if (otherTeam) return { ...ephemeral(`:no_entry: ${otherTeam}; nothing changed`), replace_original: false };
  return runInteraction(env, config, payload);
}

slackRoutes.post("/v1/slack/interactions", async (c) => {
  const { raw, replay } = await verifiedBody(c, await rawBody(c));
  if (replay) return c.json({ ...ALREADY_HANDLED, replace_original: false });
  const payloadText = new URLSearchParams(raw).get("payload");
  if (payloadText === null) {
    throw new Problem("validation", "interaction body has no payload field", {
      errors: [{ path: "body.payload", message: "required (form-encoded payload=<json>)" }],
    });
  }
  const json = parseJsonOrProblem(payloadText, "the interaction payload", "body.payload");
  const type = typeof json === "object" && json !== null && "type" in json ? json.type : undefined;
  // Other interaction types (shortcuts, view submissions) are not configured; acknowledge them.
  if (type !== "block_actions") return c.body(null, 200);
  const parsed = BlockActionsSchema.safeParse(json);
  if (!parsed.success) {
    throw new Problem("validation", "invalid block_actions payload; see errors", {
      errors: formatIssues(parsed.error, ["body", "payload"]),
    });
  }
  const payload = parsed.data;
  const message = await interactionAnswer(c.env, payload);
  // Slack takes a button's answer from response_url (the ack body of block_actions is not shown);
  // the same message is in the body for tools and tests.
  waitUntil(c)(postToResponseUrl(c.env as SlackEnv, payload.response_url, message));
  return c.json(message);
});
