import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Progress } from "../src/util/progress.js";

// An unchosen Progress on a non-TTY stderr writes plain periodic lines.
describe("Progress on a non-TTY stderr", () => {
  const tty = Object.getOwnPropertyDescriptor(process.stderr, "isTTY");
  beforeEach(() => Object.defineProperty(process.stderr, "isTTY", { value: false, configurable: true }));
  afterEach(() => {
    vi.restoreAllMocks();
    if (tty) Object.defineProperty(process.stderr, "isTTY", tty);
    else delete (process.stderr as { isTTY?: boolean }).isTTY;
  });

  function capture(): string[] {
    const out: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
    return out;
  }

  it("writes one plain line per 30 s, not a redrawn bar", () => {
    let now = 1000;
    vi.spyOn(performance, "now").mockImplementation(() => now);
    const out = capture();
    const bar = new Progress("sft", 100);
    bar.update(1, { loss: 2.5 });
    now += 29_000;
    bar.update(2, { loss: 2.4 });
    expect(out).toEqual([]);
    now += 2_000;
    bar.update(3, { loss: 2.3 });
    now += 1_000;
    bar.update(4, { loss: 2.2 });
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^sft 3\/100 31s<\d+m\d+s loss 2\.3\n$/);
    now += 40_000;
    bar.update(100, { loss: 1 });
    bar.done();
    expect(out).toHaveLength(2);
    expect(out[1]).toMatch(/^sft 100\/100 /);
    expect(out.join("")).not.toContain("\r");
  });

  it("times a resumed run's ETA on the steps done since it resumed", () => {
    let now = 0;
    vi.spyOn(performance, "now").mockImplementation(() => now);
    const out = capture();
    const bar = new Progress("sft", 4000, undefined, 1500);
    now += 60_000;
    bar.update(1530); // 30 steps in 60 s: 2,470 to go at 2 s each
    expect(out[0]).toMatch(/^sft 1530\/4000 1m00s<82m20s \n$/);
  });

  it("stays silent when the caller turned it off, and on runs shorter than 30 s", () => {
    let now = 0;
    vi.spyOn(performance, "now").mockImplementation(() => now);
    const out = capture();
    const off = new Progress("train", 10, false);
    now += 60_000;
    off.update(5);
    const short = new Progress("sft", 10);
    now += 5_000;
    short.update(10);
    short.done();
    expect(out).toEqual([]);
  });
});
