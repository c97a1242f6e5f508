// Helpers shared by CLI commands: flag parsing with clear errors, backend flags, output.
import { InvalidArgumentError, Option, type Command } from "commander";
import { BACKENDS } from "../rl/options.js";

export function intArg(name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
}

export function numArg(name: string, min = -Infinity, max = Infinity) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be a number${min > -Infinity ? ` >= ${min}` : ""}${max < Infinity ? ` and <= ${max}` : ""}, got "${v}"`);
    return n;
  };
}

/** --backend and --threads, on every command that computes. */
export function backendFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option("--backend <name>", "compute backend (auto tries cuda, then a hardware webgpu adapter, then cpu)").choices([...BACKENDS]).default("auto"))
    .option("--threads <n>", "CPU threads (0 = all cores)", intArg("--threads"), 0);
}

export function taskOption(): Option {
  return new Option("--task <name>", "task: graphla (linear algebra over dish prices) or graphli (logical inference)").choices(["graphla", "graphli"]).default("graphli");
}

/** Prints one JSON object on stdout (nothing else goes there with --json). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

export const log = (line: string): void => void process.stderr.write(line + "\n");
