// Preference optimization: the losses against PyTorch autograd (test/fixtures/make_dpo.py),
// the preference JSONL format, and `anvil dpo` end to end on the tiny model.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { pairLoss, type PreferenceLoss } from "../src/rl/preference-loss.js";

interface Case {
  name: string;
  loss: PreferenceLoss;
  beta: number;
  labelSmoothing: number;
  simpoGamma: number;
  losses: number[];
  dChosen: number[];
  dRejected: number[];
  rewardChosen: number[];
  rewardRejected: number[];
}
const fixture = JSON.parse(readFileSync(join(__dirname, "fixtures", "dpo.json"), "utf8")) as {
  pairs: Record<"chosen" | "rejected" | "refChosen" | "refRejected" | "chosenTokens" | "rejectedTokens" | "scoreChosen" | "scoreRejected", number[]>;
  cases: Case[];
};

describe("preference losses (PyTorch oracle)", () => {
  const p = fixture.pairs;
  for (const c of fixture.cases) {
    it(c.name, () => {
      let worst = 0;
      const err = (got: number, want: number) => (worst = Math.max(worst, Math.abs(got - want) / Math.max(1, Math.abs(want))));
      p.chosen.forEach((_, i) => {
        const l = pairLoss(
          {
            chosen: p.chosen[i],
            rejected: p.rejected[i],
            refChosen: p.refChosen[i],
            refRejected: p.refRejected[i],
            chosenTokens: p.chosenTokens[i],
            rejectedTokens: p.rejectedTokens[i],
            rewardGap: p.scoreChosen[i] - p.scoreRejected[i],
          },
          c,
        );
        err(l.loss, c.losses[i]);
        err(l.dChosen, c.dChosen[i]);
        err(l.dRejected, c.dRejected[i]);
        err(l.rewardChosen, c.rewardChosen[i]);
        err(l.rewardRejected, c.rewardRejected[i]);
      });
      expect(worst, `${c.name}: max relative error`).toBeLessThan(1e-12);
    });
  }

  it("MaPPO with no prior (Δr = 1) is DPO, and mappo-simpo is SimPO", () => {
    const pair = { chosen: -7, rejected: -9, refChosen: -8, refRejected: -8.5, chosenTokens: 5, rejectedTokens: 6, rewardGap: 1 };
    const cfg = { beta: 0.3, labelSmoothing: 0, simpoGamma: 0.5 };
    expect(pairLoss(pair, { ...cfg, loss: "mappo" })).toEqual(pairLoss(pair, { ...cfg, loss: "sigmoid" }));
    expect(pairLoss(pair, { ...cfg, loss: "mappo-simpo" })).toEqual(pairLoss(pair, { ...cfg, loss: "simpo" }));
  });
});
