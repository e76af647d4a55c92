/**
 * Text that came from outside (reasons, actor names, agent errors, alert-derived texts) is
 * escaped (`&`, `<`, `>`) in every Slack answer and notification (design §5b), so it can neither
 * mention `<!channel>` nor forge a `<https://…|link>`. And the newer commands reach the target's
 * object as `{command: "revert"}` / `{command: "clear", key}`. The handlers run on Node against a
 * stand-in for the target's Durable Object stub.
 */
import { describe, expect, it } from "vitest";
import { validateWorkerConfig, type WorkerConfig } from "../../shared/config.ts";
import type { Env } from "../../worker/env.ts";
import { runSlashCommand, type SlackTargetCommand, type SlashCommandBody } from "../../worker/http/slack/commands.ts";
import { runInteraction } from "../../worker/http/slack/interactions.ts";
import { formatNotification } from "../../worker/target/notifier.ts";
import { escapeSlack } from "../../worker/target/slack-blocks.ts";
import { encodeButtonValue } from "../../worker/target/slack-button-value.ts";
import testConfig from "../fixtures/worker-test-config.json" with { type: "json" };

const HOSTILE = "<!channel> & <https://evil.example/login|re-authenticate here>";
const RAW_MARKUP = /<!channel>|<https:\/\/evil/;

const loaded = validateWorkerConfig(testConfig);
if (!loaded.ok) throw new Error("test config invalid");
const config: WorkerConfig = loaded.value;

const view = { name: "slack-a", activeSide: "primary", phase: "steady", paused: false, action: null };

/** An env whose TARGETS stub records commands and answers `answer`. */
function fakeEnv(answer: { applied: boolean; rejected?: string }, calls: SlackTargetCommand[] = []): Env {
  const stub = {
    command: async (_name: string, command: SlackTargetCommand) => {
      calls.push(command);
      return { ...answer, view };
    },
    requestBreakGlass: async () => ({ epoch: 1, phase: "steady", activeSide: "primary" }),
    resolveBreakGlass: async () => ({
      outcome: "executed",
      command: "failover",
      requester: `slack:UALICE(${HOSTILE})`,
      view,
    }),
  };
  return { TARGETS: { getByName: () => stub } } as unknown as Env;
}

const slash = (text: string, user = { id: "UALICE", name: "alice" }): SlashCommandBody => ({
  text,
  user_id: user.id,
  user_name: user.name,
  channel_id: "COPS",
  channel_name: "ops",
  team_id: "T0001",
});

describe("escaping", () => {
  it("escapes &, < and > and nothing else", () => {
    expect(escapeSlack("a & b <c> `d` *e*")).toBe("a &amp; b &lt;c&gt; `d` *e*");
  });

  it("a command's reason is escaped in the channel answer and in the break-glass request", async () => {
    for (const text of [`failover slack-a ${HOSTILE}`, `failover slack-a force ${HOSTILE}`]) {
      const answer = await runSlashCommand(fakeEnv({ applied: true }), config, slash(text));
      expect(answer.response_type).toBe("in_channel");
      expect(answer.text).not.toMatch(RAW_MARKUP);
      expect(answer.text).toContain("&lt;!channel&gt; &amp; &lt;https://evil.example/login|re-authenticate here&gt;");
      expect(JSON.stringify(answer.blocks)).not.toMatch(RAW_MARKUP);
    }
  });

  it("the target's refusal and a parse error that quotes what was typed are escaped", async () => {
    const refused = await runSlashCommand(
      fakeEnv({ applied: false, rejected: `failback: ${HOSTILE}` }),
      config,
      slash("failback slack-a"),
    );
    expect(refused.text).not.toMatch(RAW_MARKUP);
    const typo = await runSlashCommand(fakeEnv({ applied: true }), config, slash(`status <!channel>`));
    expect(typo.text).not.toMatch(RAW_MARKUP);
  });

  it("a clicker's display name and the requester's are escaped in the replaced message", async () => {
    const value = encodeButtonValue({
      v: 1,
      k: "break-glass",
      t: "slack-a",
      c: "failover",
      r: "UALICE",
      e: 1,
      p: "steady",
      n: "0123456789abcdef0123456789abcdef",
    });
    const answer = await runInteraction(fakeEnv({ applied: true }), config, {
      type: "block_actions",
      user: { id: "UBOB", username: HOSTILE },
      channel: { id: "COPS", name: "ops" },
      actions: [{ action_id: "approve", value }],
    });
    expect(answer.text).toContain("approved by");
    expect(answer.text).not.toMatch(RAW_MARKUP);
  });

  it("notifications escape the machine's text (reasons, agent errors) and the action's cause and actor", () => {
    const message = formatNotification({
      target: "gw",
      kind: "action",
      text: `gw: failover gw:3 to secondary FAILED: ${HOSTILE}`,
      context: {
        activeSide: "primary",
        phase: "failed",
        epoch: 3,
        drill: false,
        approval: null,
        action: {
          id: "gw:3",
          kind: "failover",
          from: "primary",
          to: "secondary",
          status: "failed",
          trigger: "manual",
          reason: HOSTILE,
          actor: `slack:UALICE(${HOSTILE})`,
          dryRun: false,
          steps: [{ name: "preflight", status: "failed" }],
        },
      },
    });
    expect(message.text).not.toMatch(RAW_MARKUP);
    expect(JSON.stringify(message.blocks)).not.toMatch(RAW_MARKUP);
    expect(message.text).toContain("FAILED: &lt;!channel&gt;");
  });
});

describe("revert and clear reach the target's object", () => {
  it("passes {command: revert} and {command: clear, key}, with the Slack user as actor", async () => {
    const calls: SlackTargetCommand[] = [];
    const env = fakeEnv({ applied: true }, calls);
    expect((await runSlashCommand(env, config, slash("revert slack-a"))).response_type).toBe("in_channel");
    expect((await runSlashCommand(env, config, slash("clear slack-a am:abc123 stuck"))).response_type).toBe(
      "in_channel",
    );
    expect(calls).toEqual([
      { command: "revert", actor: "slack:UALICE(alice)" },
      { command: "clear", key: "am:abc123", reason: "stuck", actor: "slack:UALICE(alice)" },
    ]);
    // Mutating: only allowed users.
    const refused = await runSlashCommand(env, config, slash("revert slack-a", { id: "UMALLORY", name: "mallory" }));
    expect(refused.text).toContain("chatops.slack.allowedUsers");
    expect(calls).toHaveLength(2);
  });
});
