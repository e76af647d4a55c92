/**
 * slack/manifest.yaml matches the worker's Slack routes (design §3) and asks for exactly the bot
 * scopes turnout uses: `commands`, `chat:write`, `incoming-webhook`.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";

const ManifestSchema = z.object({
  features: z.object({
    slash_commands: z.array(z.object({ command: z.string(), url: z.string(), should_escape: z.boolean() })),
  }),
  oauth_config: z.object({ scopes: z.object({ bot: z.array(z.string()) }) }),
  settings: z.object({ interactivity: z.object({ is_enabled: z.boolean(), request_url: z.string() }) }),
});

describe("Slack app manifest", () => {
  const manifest = ManifestSchema.parse(
    parse(readFileSync(new URL("../../slack/manifest.yaml", import.meta.url), "utf8")),
  );

  it("points /turnout and the buttons at the worker's Slack routes", () => {
    expect(manifest.features.slash_commands).toEqual([
      expect.objectContaining({ command: "/turnout", url: "https://<worker>/v1/slack/commands", should_escape: false }),
    ]);
    expect(manifest.settings.interactivity).toEqual({
      is_enabled: true,
      request_url: "https://<worker>/v1/slack/interactions",
    });
  });

  it("asks for the bot scopes commands, chat:write and incoming-webhook", () => {
    expect([...manifest.oauth_config.scopes.bot].sort()).toEqual(["chat:write", "commands", "incoming-webhook"]);
  });
});
