// src/bench/report.ts: rows stream out as they are measured; --json prints one object at the end.
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { formatTable, runBench, type BenchSuite } from "../src/bench/report.js";
import { loadSuites } from "../src/cli/commands/bench.js";

function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, cb) {
      w.text += String(chunk);
      cb();
    },
  }) as Writable & { text: string };
  w.text = "";
  return w;
}

const row = (name: string, seconds: number) => ({ name, impl: "anvil fused", seconds, gflops: 12.5, note: "n" });

describe("runBench", () => {
  it("prints each row on stdout the moment the suite reports it, with a progress line on stderr", async () => {
    const out = sink(), err = sink();
    const seen: string[] = [];
    const suite: BenchSuite = {
      suite: "kernels",
      title: "demo",
      async run(ctx) {
        expect(ctx.full).toBe(false);
        ctx.progress("first op");
        ctx.row(row("first op", 0.0123));
        seen.push(out.text); // what a person sees before the second measurement starts
        ctx.progress("second op");
        ctx.row(row("second op", 2.5));
      },
    };
    const r = await runBench([suite], { stdout: out, stderr: err });
    expect(seen[0]).toMatch(/kernels: demo\nbenchmark\s+impl\s+time/);
    expect(seen[0]).toMatch(/first op\s+anvil fused\s+12\.30 ms\s+12\.5/);
    expect(seen[0]).not.toMatch(/second op/);
    expect(out.text).toMatch(/second op\s+anvil fused\s+2\.50 s/);
    expect(err.text).toMatch(/\[\s*\d+\.\d s\] kernels\/demo: first op \.\.\.\n/);
    expect(err.text).toMatch(/kernels\/demo: second op \.\.\./);
    expect(r.sections).toEqual([{ suite: "kernels", title: "demo", rows: [row("first op", 0.0123), row("second op", 2.5)] }]);
  });

  it("--json: nothing on stdout until one object at the end; rows go to stderr as they come", async () => {
    const out = sink(), err = sink();
    const suites: BenchSuite[] = [
      {
        suite: "kernels",
        title: "a",
        async run(ctx) {
          ctx.row(row("x", 1));
          expect(out.text).toBe("");
          expect(err.text).toMatch(/kernels\/a: x\s+anvil fused/);
        },
      },
      { suite: "model", title: "b", run: async (ctx) => ctx.row(row("y", 2)) },
    ];
    await runBench(suites, { json: true, full: true, stdout: out, stderr: err });
    const lines = out.text.trim().split("\n");
    expect(lines).toHaveLength(1);
    const parsed = JSON.parse(lines[0]) as { sections: { suite: string; rows: unknown[] }[]; seconds: number };
    expect(parsed.sections.map((s) => [s.suite, s.rows.length])).toEqual([["kernels", 1], ["model", 1]]);
    expect(parsed.seconds).toBeGreaterThanOrEqual(0);
  });

  it("a failing suite rejects (the CLI turns it into an error line and exit code 1)", async () => {
    const suite: BenchSuite = { suite: "kernels", title: "bad", run: async () => Promise.reject(new Error("boom")) };
    await expect(runBench([suite], { stdout: sink(), stderr: sink() })).rejects.toThrow("boom");
  });
});

describe("formatTable", () => {
  it("aligns columns to the widest cell", () => {
    const t = formatTable([row("short", 1e-5), { name: "a much longer name", impl: "torch", seconds: NaN, note: "skipped: no torch" }]).split("\n");
    expect(t[0].indexOf("impl")).toBe(t[2].indexOf("anvil fused"));
    expect(t[3]).toMatch(/^a much longer name\s+torch\s+-\s+skipped: no torch$/);
    expect(t[2]).toMatch(/10\.0 us/);
  });
});

describe("anvil bench's suites", () => {
  it("are found through the package root, not imported by the library", async () => {
    const suites = await loadSuites();
    expect(suites.map((s) => `${s.suite}/${s.title}`)).toEqual([
      "kernels/fused kernels",
      "kernels/matmul",
      "kernels/attention",
      "backends/every kernel on every backend",
      "model/decoder end to end",
      "preference/one DPO step: pair tokens per second",
      "memory/one RL step of paper-sized models",
      "serve/anvil serve vs in-process generation",
    ]);
  });
});
