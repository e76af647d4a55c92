/**
 * Matchers as Alertmanager's parser reads them (design §4; `pkg/labels/parse.go`): escapes,
 * spurious escapes kept literally (the way regexes are usually written), anchoring, RE2 flags.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { matches, parseMatcher } from "../../shared/matchers.ts";

describe("parseMatcher", () => {
  it("keeps a backslash that escapes nothing, so regexes read as they are written", () => {
    const m = parseMatcher('gateway=~"10\\.116\\..*"');
    expect(m.value).toBe("10\\.116\\..*");
    expect(matches(m, { gateway: "10.116.0.4" })).toBe(true);
    expect(matches(m, { gateway: "10x116.0.4" })).toBe(false);
    // The doubled form (what a JSON-minded writer produces) means the same regex.
    expect(parseMatcher('gateway=~"10\\\\.116\\\\..*"').value).toBe("10\\.116\\..*");
    expect(matches(parseMatcher('instance=~"web-\\d+"'), { instance: "web-12" })).toBe(true);
  });

  it('unescapes \\n, \\" and \\\\, takes unquoted values, and refuses a stray quote', () => {
    expect(parseMatcher('msg="say \\"hi\\"\\nbye \\\\ end"').value).toBe('say "hi"\nbye \\ end');
    expect(parseMatcher("alertname=GatewayDown").value).toBe("GatewayDown");
    expect(parseMatcher('a=""').value).toBe("");
    expect(() => parseMatcher('a="x"y"')).toThrow(/bad quoting.*unescaped double quote/);
    expect(() => parseMatcher('a="open')).toThrow(/missing closing double quote/);
  });

  it("anchors regexes and reads RE2's leading (?i) as a flag; RE2-only escapes still compile", () => {
    const ci = parseMatcher('alertname=~"(?i)gateway.*"');
    expect(matches(ci, { alertname: "GATEWAYDown" })).toBe(true);
    expect(matches(ci, { alertname: "xGatewayDown" })).toBe(false);
    expect(matches(parseMatcher('host=~"gw\\-a"'), { host: "gw-a" })).toBe(true);
    expect(matches(parseMatcher('host!~"gw-.*"'), { host: "db-1" })).toBe(true);
    expect(() => parseMatcher('host=~"("')).toThrow(/invalid regex/);
  });

  it("round-trips any value quoted the way Alertmanager quotes it", () => {
    const quote = (v: string) => `"${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`;
    fc.assert(
      fc.property(fc.string({ unit: "grapheme-ascii" }), (v) => {
        expect(parseMatcher(`label=${quote(v)}`).value).toBe(v);
      }),
    );
  });
});
