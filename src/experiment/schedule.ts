// The order in which `anvil experiment anchor-vs-grpo --jobs N` hands its child processes work:
// each task's weak start, then the RL units, each free to start as soon as its own task's weak start
// is done. Waiting for every weak start first left a core idle: the two tasks' weak starts take
// unequal times (SFT until the task's window, checked more often inside it), and the core of the
// one that ended first sat unused until the other ended.
import type { TaskName } from "../tasks/types.js";

/** A job of the table: a task's weak start, or a run (a work unit) that needs its task's weak start. */
export type TableJob<U extends { task: TaskName }> = { kind: "weak"; task: TaskName } | { kind: "unit"; unit: U };

/**
 * Runs `jobs` in order, at most `slots` at a time, except that a unit waits until its task's weak
 * start (a "weak" job in `jobs`) is done: a free slot takes the first job it may start. After a
 * failure no job starts (the running ones end) and the first error is thrown.
 */
export async function runPipelined<U extends { task: TaskName }>(jobs: readonly TableJob<U>[], slots: number, run: (job: TableJob<U>) => Promise<void>): Promise<void> {
  const queue = [...jobs];
  const pendingWeak = new Set(queue.flatMap((j) => (j.kind === "weak" ? [j.task] : [])));
  const failures: unknown[] = [];
  let waiting: (() => void)[] = [];
  const wakeAll = () => {
    const w = waiting;
    waiting = [];
    for (const f of w) f();
  };
  const worker = async (): Promise<void> => {
    while (failures.length === 0 && queue.length > 0) {
      const i = queue.findIndex((j) => j.kind === "weak" || !pendingWeak.has(j.unit.task));
      // Every startable job is taken and the rest wait for a weak start now running: sleep until one ends.
      if (i < 0) {
        await new Promise<void>((r) => waiting.push(r));
        continue;
      }
      const job = queue.splice(i, 1)[0]!;
      try {
        await run(job);
        if (job.kind === "weak") pendingWeak.delete(job.task);
      } catch (error) {
        failures.push(error);
      } finally {
        wakeAll();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, slots) }, worker));
  if (failures.length > 0) throw failures[0];
}
