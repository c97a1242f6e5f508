import type { Command } from "commander";
import { basename, resolve } from "node:path";
import { createBackend, type BackendChoice } from "../../backend/index.js";
import { Policy } from "../../rl/policy.js";
import { ServeEngine } from "../../serve/engine.js";
import { createServeServer } from "../../serve/server.js";
import { adapterOption, backendFlags, intArg, log } from "../common.js";

export function register(program: Command): void {
  backendFlags(
    program
      .command("serve")
      .description("OpenAI-compatible server (/v1/completions, /v1/chat/completions, /health, /v1/models, /update_weights_from_disk, /v1/load_lora_adapter) batching requests through the fused sampler")
      .requiredOption("--model <dir>", "model directory (HF config.json + safetensors + tokenizer.json)")
      .addOption(adapterOption())
      .option("--lora-name <name>", "model id of the --adapter, as vLLM's --lora-modules name=dir (default: the adapter directory's name)")
      .option("--port <n>", "TCP port (0 = any free port; the address is printed on stderr)", intArg("--port"), 8000)
      .option("--host <addr>", "address to listen on", "127.0.0.1")
      .option("--served-model-name <name>", "model id clients pass as \"model\" (default: the directory's name)")
      .option("--max-batch <n>", "rows decoded together at most (a request with a larger n runs alone)", intArg("--max-batch", 1), 64)
      .option("--weight-version <v>", "weight version reported until the first reload", "0"),
  ).action(async (o: { model: string; adapter?: string; loraName?: string; port: number; host: string; servedModelName?: string; maxBatch: number; weightVersion: string; backend: BackendChoice; threads: number }) => {
    const backend = await createBackend(o.backend, { threads: o.threads, warn: log });
    const policy = await Policy.load(o.model, backend, { adapter: o.adapter });
    const engine = new ServeEngine(policy, o.maxBatch, o.weightVersion);
    const name = o.servedModelName ?? basename(resolve(o.model));
    if (o.adapter) {
      engine.lora = { name: o.loraName ?? basename(resolve(o.adapter)), path: resolve(o.adapter) };
      if (engine.lora.name === name) throw new Error(`--lora-name: the adapter's id must differ from the base model's ("${name}")`);
    }
    const server = createServeServer(engine, { name, root: resolve(o.model) });
    await new Promise<void>((ok, fail) => server.once("error", fail).listen(o.port, o.host, ok));
    const addr = server.address();
    const port = typeof addr === "object" && addr ? addr.port : o.port;
    log(`anvil serve: ${name}${engine.lora ? ` + adapter ${engine.lora.name}` : ""} on http://${o.host}:${port} (weight version ${engine.version}, max batch ${o.maxBatch})`);
    const stop = () => {
      log("anvil serve: shutting down");
      server.close();
      server.closeAllConnections();
      policy.model.dispose();
      backend.destroy();
      process.exit(0);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
