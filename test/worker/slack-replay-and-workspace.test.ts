/**
 * Slack replay protection and the workspace check (design §5b, §8), in workerd: the same signed
 * request sent twice is executed once (the second answers 200 "already handled" and changes
 * nothing), the seen set lives in the ReplayGuard Durable Object and expires with the request's
 * 5-minute window, and with `chatops.slack.teamId` set another workspace's commands and clicks are
 * refused.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/http/app.ts";
import { replayWindowEnd, SLACK_REPLAY_GUARD_NAME } from "../../worker/http/slack/replay-guard.ts";
import testConfig from "../fixtures/worker-test-config.json" with { type: "json" };
import { ALICE, approveValue, BOB, clickBody, type SlackAnswer, signedPost, slashBody } from "../slack/slack-client.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { fetcher, useSlackRoutes } from "./support/slack-routes.ts";

const rec = useRecordingObject();

useSlackRoutes();

/** One request exactly as Slack signed it, so it can be sent again byte for byte. */
function captured(path: string, body: string): () => Promise<Response> {
  const timestamp = Math.floor(Date.now() / 1000);
  return () => signedPost(fetcher, path, body, { timestamp });
}

const events = async (target: string) => (await env.TARGETS.getByName(target).events(0, 500)).events;

describe("replayed Slack requests", () => {
  it("the same signed `failover` sent twice executes once; the copy answers 200 already handled", async () => {
    const send = captured("/v1/slack/commands", slashBody("failover slack-a gw-a is dead"));
    const first = await send();
    expect(first.status).toBe(200);
    expect(((await first.json()) as SlackAnswer).response_type).toBe("in_channel");
    await env.TARGETS.getByName("slack-a").settle();
    expect(rec.dispatched).toHaveLength(1);
    const audit = await events("slack-a");

    const again = await send();
    expect(again.status).toBe(200);
    const answer = (await again.json()) as SlackAnswer;
    expect(answer).toMatchObject({ response_type: "ephemeral" });
    expect(answer.text).toContain("already handled");
    await env.TARGETS.getByName("slack-a").settle();
    expect(rec.dispatched).toHaveLength(1);
    expect(await events("slack-a")).toEqual(audit);
    // "failover" means "switch to the other side": a replay accepted later would switch back.
    expect((await env.TARGETS.getByName("slack-a").view("slack-a")).action).toMatchObject({ id: "slack-a:1" });
  });

  it("two copies racing: exactly one runs", async () => {
    const send = captured("/v1/slack/commands", slashBody("pause slack-b"));
    const answers = await Promise.all([send(), send()]);
    const texts = await Promise.all(answers.map(async (r) => ((await r.json()) as SlackAnswer).text));
    expect(texts.filter((t) => t.includes("already handled"))).toHaveLength(1);
    expect((await events("slack-b")).filter((e) => e.type === "command.accepted")).toHaveLength(1);
  });

  it("a replayed button click changes nothing", async () => {
    const request = (await (
      await signedPost(fetcher, "/v1/slack/commands", slashBody("failover slack-a force now"))
    ).json()) as SlackAnswer;
    const value = approveValue(request);
    if (!value) throw new Error("no Approve button");
    const send = captured("/v1/slack/interactions", clickBody("approve", value, BOB));
    expect((await send()).status).toBe(200);
    await env.TARGETS.getByName("slack-a").settle();
    const audit = await events("slack-a");
    const again = (await (await send()).json()) as SlackAnswer;
    expect(again.text).toContain("already handled");
    expect(await events("slack-a")).toEqual(audit);
  });

  it("remembers a signature until its window ends, then forgets it", async () => {
    const guard = env.SLACK_REPLAY.getByName(SLACK_REPLAY_GUARD_NAME);
    const ts = 1_800_000_000;
    const end = replayWindowEnd(ts);
    expect(end).toBe((ts + 301) * 1000);
    expect(await guard.firstSight("v0=aa", end, ts * 1000)).toBe(true);
    expect(await guard.firstSight("v0=aa", end, end - 1)).toBe(false);
    expect(await guard.firstSight("v0=bb", end, end - 1)).toBe(true);
    // Past the window the signature check refuses the request anyway; the entry is gone.
    expect(await guard.firstSight("v0=cc", end + 60_000, end)).toBe(true);
    expect(await guard.size()).toBe(1);
  });
});

describe("chatops.slack.teamId", () => {
  const withTeam = {
    ...env,
    TURNOUT_CONFIG: JSON.stringify({
      ...testConfig,
      chatops: { slack: { ...testConfig.chatops.slack, teamId: "T0001" } },
    }),
  };
  const post = async (path: string, body: string) => {
    const res = await signedPost(async (u, i) => app.request(u, i, withTeam), path, body);
    expect(res.status).toBe(200);
    return (await res.json()) as SlackAnswer;
  };
  const fromTeam = (body: string, team: string) => body.replaceAll("T0001", team);

  it("refuses another workspace's commands, even status, and its clicks; its own workspace works", async () => {
    for (const text of ["failover slack-a", "status"]) {
      const other = await post("/v1/slack/commands", fromTeam(slashBody(text, ALICE), "T0OTHER"));
      expect(other.response_type).toBe("ephemeral");
      expect(other.text).toContain("chatops.slack.teamId");
    }
    const own = await post("/v1/slack/commands", slashBody("failover slack-a force now", ALICE));
    expect(own.response_type).toBe("in_channel");
    const value = approveValue(own);
    if (!value) throw new Error("no Approve button");
    const click = await post("/v1/slack/interactions", fromTeam(clickBody("approve", value, BOB), "T0OTHER"));
    expect(click.text).toContain("chatops.slack.teamId");
    await env.TARGETS.getByName("slack-a").settle();
    expect(rec.dispatched).toHaveLength(0);
  });
});
