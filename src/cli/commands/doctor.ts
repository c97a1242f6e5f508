import type { Command } from "commander";
import { doctor, formatDoctor } from "../doctor.js";
import { printJson } from "../common.js";

export function register(program: Command): void {
  program
    .command("doctor")
    .description("report the backends found on this machine (cpu BLAS and threads, cuda devices, webgpu adapter) and why any is unusable")
    .option("--json", "print one JSON object")
    .action(async (o: { json?: boolean }) => {
      const r = await doctor();
      if (o.json) printJson(r);
      else process.stdout.write(formatDoctor(r) + "\n");
    });
}
