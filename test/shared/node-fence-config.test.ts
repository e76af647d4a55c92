/**
 * The agent config's node-fence target (design §8): defaults, and the selectors it refuses, each
 * named by path.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { validateAgentConfig } from "../../shared/config.ts";
import { fenceConfig as config } from "../support/node-fence-cluster.ts";

describe("node-fence agent config", () => {
  it("accepts the design §8 example and fills the defaults", () => {
    const r = validateAgentConfig(config({}));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.value.targets["dc-nodes"]).toMatchObject({
      notReadySeconds: 60,
      maxFenceFraction: 0.5,
      settleSeconds: 300,
      workloads: [],
    });
  });

  it("refuses set-based selectors, equal groups, fractions outside (0, 1] and DaemonSet workloads, naming the paths", () => {
    const problems = (target: Record<string, unknown>) => {
      const r = validateAgentConfig(config(target));
      return r.ok ? [] : r.problems.map((p) => p.path);
    };
    expect(problems({ nodes: { primary: { selector: "zone in (dc-1)" }, secondary: { selector: "zone=b" } } })).toEqual(
      ["targets.dc-nodes.nodes.primary.selector"],
    );
    expect(problems({ nodes: { primary: { selector: "zone=a" }, secondary: { selector: "zone=a" } } })).toEqual([
      "targets.dc-nodes.nodes.secondary.selector",
    ]);
    expect(problems({ maxFenceFraction: 0 })).toEqual(["targets.dc-nodes.maxFenceFraction"]);
    expect(problems({ maxFenceFraction: 1.5 })).toEqual(["targets.dc-nodes.maxFenceFraction"]);
    expect(problems({ workloads: [{ kind: "DaemonSet", namespace: "a", name: "b" }] })).toEqual([
      "targets.dc-nodes.workloads.0.kind",
    ]);
  });

  it("accepts every equality selector of valid label keys and values", () => {
    const part = fc.stringMatching(/^[a-z0-9]([-a-z0-9_.]{0,10}[a-z0-9])?$/);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.option(part, { nil: undefined }), part, part), { minLength: 1, maxLength: 3 }),
        (terms) => {
          const selector = terms
            .map(([prefix, key, value]) => `${prefix ? `${prefix.replaceAll("_", "-")}/` : ""}${key}=${value}`)
            .join(",");
          const r = validateAgentConfig(
            config({ nodes: { primary: { selector }, secondary: { selector: `${selector},turnout-side=b` } } }),
          );
          return r.ok;
        },
      ),
    );
  });
});
