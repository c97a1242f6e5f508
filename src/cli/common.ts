// Helpers shared by CLI commands: flag parsing with clear errors, backend flags, output.
import { InvalidArgumentError, Option, type Command } from "commander";
import { OPTIONS, OptionsError, parseOptionValue, type OptionName, type OptionTable } from "../rl/options.js";

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

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());

/**
 * The flag of a training option (src/rl/options.ts): its --help line, choices and range come
 * from the table. `withDefault` gives the parsed value the table's default (sft, eval, ...);
 * without it (train) an absent flag stays undefined, so config files and presets apply.
 * `table`: another command's option table (e.g. dpo's, src/rl/preference-options.ts).
 */
export function optionFlag(key: OptionName, how?: { flag?: string; help?: string; withDefault?: boolean }): Option;
export function optionFlag<T extends OptionTable>(key: keyof T & string, how: { flag?: string; help?: string; withDefault?: boolean }, table: T): Option;
export function optionFlag(key: string, how: { flag?: string; help?: string; withDefault?: boolean } = {}, table: OptionTable = OPTIONS): Option {
  const spec = table[key]!;
  const name = how.flag ?? `--${kebab(key)}`;
  const help = how.help ?? spec.help;
  // Booleans are switches (train adds --no-X); auto-booleans stay undefined (auto) unless given.
  if (spec.kind === "boolean" || spec.kind === "auto-boolean") return new Option(name, help);
  const shown = spec.shownDefault ?? String(spec.default);
  const opt = new Option(`${name} <value>`, how.withDefault || spec.default === "" ? help : `${help} [default: ${shown}]`);
  if (Array.isArray(spec.kind)) opt.choices([...spec.kind]);
  else
    opt.argParser((v: string) => {
      try {
        return parseOptionValue(key, v, table);
      } catch (e) {
        if (e instanceof OptionsError) throw new InvalidArgumentError(e.message);
        throw e;
      }
    });
  if (how.withDefault) opt.default(spec.default, spec.shownDefault);
  return opt;
}

/** --backend and --threads, on every command that computes. */
export function backendFlags(cmd: Command): Command {
  return cmd.addOption(optionFlag("backend", { withDefault: true })).addOption(optionFlag("threads", { withDefault: true }));
}

/** --adapter, on every command that takes --model. */
export function adapterOption(): Option {
  return new Option("--adapter <dir>", "PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) applied on top of --model");
}

/** LoRA and memory flags of the training commands (sft; train declares them from TrainOptions). */
export function loraFlags(cmd: Command): Command {
  return cmd
    .addOption(adapterOption())
    .addOption(optionFlag("loraR", { withDefault: true }))
    .addOption(optionFlag("loraAlpha", { withDefault: true }))
    .addOption(optionFlag("loraTargets", { withDefault: true }))
    .addOption(optionFlag("frozenDtype", { withDefault: true }))
    .addOption(optionFlag("gradientCheckpointing"))
    .addOption(new Option("--no-gradient-checkpointing").hideHelp());
}

export function taskOption(): Option {
  return optionFlag("task", { withDefault: true });
}

/** Prints one JSON object on stdout (nothing else goes there with --json). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

export const log = (line: string): void => void process.stderr.write(line + "\n");
