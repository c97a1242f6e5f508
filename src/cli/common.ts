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

/** --adapter, on every command that takes --model. */
export function adapterOption(): Option {
  return new Option("--adapter <dir>", "PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) applied on top of --model");
}

/** LoRA and memory flags of the training commands (sft; train declares them from TrainOptions). */
export function loraFlags(cmd: Command): Command {
  return cmd
    .addOption(adapterOption())
    .option("--lora-r <n>", "LoRA rank (0 = full fine-tuning); base frozen, only the adapter trained and saved", intArg("--lora-r"), 0)
    .option("--lora-alpha <x>", "LoRA alpha: update = (alpha / r) B A (0 = 2r)", numArg("--lora-alpha", 0), 0)
    .option("--lora-targets <list>", "projections with adapters: any of q,k,v,o,gate,up,down", "q,k,v,o,gate,up,down")
    .option("--gradient-checkpointing", "recompute block activations in backward (default: on under LoRA above 100M parameters)")
    .addOption(new Option("--no-gradient-checkpointing").hideHelp());
}

export function taskOption(): Option {
  return new Option("--task <name>", "task: graphla (linear algebra over dish prices) or graphli (logical inference)").choices(["graphla", "graphli"]).default("graphli");
}

/** Prints one JSON object on stdout (nothing else goes there with --json). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

export const log = (line: string): void => void process.stderr.write(line + "\n");
