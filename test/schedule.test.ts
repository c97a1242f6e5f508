import { describe, expect, it } from "vitest";
import { runPipelined, type TableJob } from "../src/experiment/schedule.js";
import type { TaskName } from "../src/tasks/types.js";

type Unit = { task: TaskName; name: string };
const weak = (task: TaskName): TableJob<Unit> => ({ kind: "weak", task });
const unit = (task: TaskName, name: string): TableJob<Unit> => ({ kind: "unit", unit: { task, name } });
const label = (j: TableJob<Unit>) => (j.kind === "weak" ? `${j.task} weak` : j.unit.name);

/** Runs the jobs with each one's duration in ticks of a fake clock; returns [label, start, end] per job. */
async function simulate(jobs: TableJob<Unit>[], slots: number, ticks: Record<string, number>, fail?: string) {
  const log: [string, number, number][] = [];
  let now = 0;
  let running = 0;
  let maxRunning = 0;
  const timers: { at: number; done: () => void }[] = [];
  const pump = async () => {
    // Advance the clock to the next job's end once every worker has had its turn.
    for (;;) {
      await new Promise((r) => setImmediate(r));
      if (timers.length === 0) return;
      timers.sort((a, b) => a.at - b.at);
      const t = timers.shift()!;
      now = t.at;
      t.done();
    }
  };
  const done = runPipelined(jobs, slots, async (j) => {
    const name = label(j);
    const start = now;
    running++;
    maxRunning = Math.max(maxRunning, running);
    await new Promise<void>((r) => timers.push({ at: now + ticks[name]!, done: r }));
    running--;
    log.push([name, start, now]);
    if (name === fail) throw new Error(`${name} failed`);
  });
  const [outcome] = await Promise.allSettled([done, pump()]);
  return { log, maxRunning, outcome };
}

describe("runPipelined", () => {
  const jobs = [weak("graphla"), weak("graphli"), unit("graphli", "li1"), unit("graphli", "li2"), unit("graphla", "la1")];
  const ticks = { "graphla weak": 10, "graphli weak": 2, li1: 5, li2: 5, la1: 3 };

  it("starts a task's runs as soon as its own weak start is done, never more than the slots", async () => {
    const { log, maxRunning, outcome } = await simulate(jobs, 2, ticks);
    expect(outcome.status).toBe("fulfilled");
    expect(maxRunning).toBe(2);
    const at = Object.fromEntries(log.map(([n, s, e]) => [n, { s, e }]));
    expect(Object.keys(at).sort()).toEqual(["graphla weak", "graphli weak", "la1", "li1", "li2"]);
    // GraphLI's runs fill the core GraphLI's weak start freed while GraphLA's SFT goes on.
    expect(at.li1!.s).toBe(2);
    expect(at.li2!.s).toBe(7);
    expect(at.li2!.s).toBeLessThan(at["graphla weak"]!.e);
    // And no run starts before its task's weak start ends.
    expect(at.la1!.s).toBeGreaterThanOrEqual(at["graphla weak"]!.e);
    expect(at.li1!.s).toBeGreaterThanOrEqual(at["graphli weak"]!.e);
    expect(Math.max(...log.map(([, , e]) => e))).toBe(13);
  });

  it("starts nothing after a failure, runs no unit of a task whose weak start failed, and throws", async () => {
    const { log, outcome } = await simulate(jobs, 2, ticks, "graphli weak");
    expect(outcome.status).toBe("rejected");
    expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(Error);
    expect(String((outcome as PromiseRejectedResult).reason)).toContain("graphli weak failed");
    // GraphLA's weak start was running and ends; nothing else starts.
    expect(log.map(([n]) => n).sort()).toEqual(["graphla weak", "graphli weak"]);
  });

  it("with one slot runs the jobs in order, units waiting for their weak start", async () => {
    const { log } = await simulate([weak("graphla"), unit("graphla", "la1"), unit("graphla", "la2")], 1, { "graphla weak": 4, la1: 1, la2: 1 });
    expect(log).toEqual([
      ["graphla weak", 0, 4],
      ["la1", 4, 5],
      ["la2", 5, 6],
    ]);
  });
});
