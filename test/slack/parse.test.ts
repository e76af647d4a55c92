import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { closest, HELP_TEXT, parseSlashCommand } from "../../worker/http/slack/parse.ts";

const targets = ["egress-gw", "bootstrap-dns", "global-dr"];

describe("/turnout command parsing", () => {
  it.each([
    ["", { kind: "help" }],
    ["help", { kind: "help" }],
    ["status", { kind: "status" }],
    ["status egress-gw", { kind: "status", target: "egress-gw" }],
    ["failover egress-gw", { kind: "mutate", command: "failover", target: "egress-gw", force: false, reason: "" }],
    [
      "failover egress-gw force gw-a is on fire",
      { kind: "mutate", command: "failover", target: "egress-gw", force: true, reason: "gw-a is on fire" },
    ],
    [
      "  FAILBACK   bootstrap-dns  repaired ",
      { kind: "mutate", command: "failback", target: "bootstrap-dns", force: false, reason: "repaired" },
    ],
    ["pause global-dr", { kind: "mutate", command: "pause", target: "global-dr", force: false, reason: "" }],
    ["retry global-dr", { kind: "mutate", command: "retry", target: "global-dr", force: false, reason: "" }],
    ["revert egress-gw", { kind: "mutate", command: "revert", target: "egress-gw", force: false, reason: "" }],
    [
      "clear egress-gw am:4f1c2b0a9d8e7f6a stuck since the upgrade",
      {
        kind: "mutate",
        command: "clear",
        target: "egress-gw",
        force: false,
        reason: "stuck since the upgrade",
        key: "am:4f1c2b0a9d8e7f6a",
      },
    ],
    [
      "clear global-dr nagios:db-1!etcd",
      { kind: "mutate", command: "clear", target: "global-dr", force: false, reason: "", key: "nagios:db-1!etcd" },
    ],
  ])("parses %j", (text, command) => {
    expect(parseSlashCommand(text, targets)).toEqual({ ok: true, command });
  });

  it("clear needs a key; revert and clear are in the help text", () => {
    expect(parseSlashCommand("clear egress-gw", targets)).toEqual({
      ok: false,
      error: "`clear` needs a signal key: `/turnout clear <target> <key>`",
    });
    expect(parseSlashCommand("clear", targets)).toMatchObject({ ok: false });
    expect(parseSlashCommand("revert egress-gw force", targets)).toMatchObject({ ok: false });
    expect(HELP_TEXT).toContain("`/turnout revert <target>`");
    expect(HELP_TEXT).toContain("`/turnout clear <target> <key>`");
  });

  it("suggests the closest command for a typo", () => {
    expect(parseSlashCommand("failovr egress-gw", targets)).toEqual({
      ok: false,
      error: "unknown command `failovr`; did you mean `failover`?",
    });
    expect(parseSlashCommand("stauts", targets)).toMatchObject({ error: expect.stringContaining("`status`") });
  });

  it("suggests the closest target for an unknown one, or lists them", () => {
    expect(parseSlashCommand("failover egress-g", targets)).toEqual({
      ok: false,
      error: "unknown target `egress-g`; did you mean `egress-gw`?",
    });
    expect(parseSlashCommand("pause zzzzzzzzzz", targets)).toMatchObject({
      error: expect.stringContaining("targets are `egress-gw`, `bootstrap-dns`, `global-dr`"),
    });
  });

  it("requires a target for mutating commands and refuses force outside failover/failback", () => {
    expect(parseSlashCommand("approve", targets)).toMatchObject({
      ok: false,
      error: expect.stringContaining("needs a target"),
    });
    expect(parseSlashCommand("pause egress-gw force", targets)).toMatchObject({ ok: false });
  });

  it("never throws on arbitrary text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        const r = parseSlashCommand(text, targets);
        expect(typeof r.ok).toBe("boolean");
      }),
      { numRuns: 2000 },
    );
  });

  it("finds no suggestion for unrelated words", () => {
    expect(closest("xyzzy", targets)).toBeUndefined();
  });
});
