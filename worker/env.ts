import type { AgentObject } from "./agents/agent-object.ts";
import type { ReplayGuard } from "./http/slack/replay-guard.ts";
import type { TargetObject } from "./target/target-object.ts";

/** Bindings and secrets of the worker (design §8). Secrets are optional: an unset one disables its endpoint. */
export interface Env {
  TARGETS: DurableObjectNamespace<TargetObject>;
  /** One object per agent (design §11.1): its heartbeats, liveness and silence alarm. */
  AGENTS: DurableObjectNamespace<AgentObject>;
  /** The seen set of Slack request signatures (replay protection, design §5b). */
  SLACK_REPLAY: DurableObjectNamespace<ReplayGuard>;
  /** JSON; wins over the bundled turnout.config.json. */
  TURNOUT_CONFIG?: string;
  ALERTMANAGER_TOKEN?: string;
  NAGIOS_TOKEN?: string;
  /** Legacy single operator token: the identity `operator` with role `operator` (design §3a). */
  OPERATOR_TOKEN?: string;
  /** JSON `{"<name>": {"token": "<secret>", "role": "viewer" | "operator"}}` (design §3a). */
  OPERATOR_TOKENS?: string;
  SLACK_SIGNING_SECRET?: string;
  TURNOUT_AGENT_SECRET?: string;
  TURNOUT_AGENT_SECRET_NEXT?: string;
  /** JSON `{"<agent>": "<secret ≥ 32 chars>" | ["<current>", "<next>"]}` (design §11.1); the legacy pair is `default`'s. */
  TURNOUT_AGENT_SECRETS?: string;
  SLACK_WEBHOOK_URL?: string;
  /** Bot token (`xoxb-…`): with `chatops.slack.notifyChannel`, notifications are threaded per incident. */
  SLACK_BOT_TOKEN?: string;
  /** Slack Web API base (default https://slack.com/api); a var for testing against a fake Slack. */
  SLACK_API_URL?: string;
  QSTASH_TOKEN?: string;
  QSTASH_CURRENT_SIGNING_KEY?: string;
  QSTASH_NEXT_SIGNING_KEY?: string;
}
