// `--backend auto` and `anvil doctor` share one probe (pickAuto); auto looks for a GPU before
// loading Dawn, so a machine without one never sees Dawn's own warnings.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { missingGpu, pickAuto } from "../src/backend/index.js";

const root = mkdtempSync(join(tmpdir(), "anvil-gpu-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe.runIf(process.platform === "linux")("backend auto", () => {
  it("finds no GPU without the Vulkan loader or a GPU device node", () => {
    const saved = process.env.LD_LIBRARY_PATH;
    delete process.env.LD_LIBRARY_PATH;
    try {
      expect(missingGpu(root)).toMatch(/no Vulkan loader \(libvulkan\.so\.1\)/);
      mkdirSync(join(root, "etc"));
      writeFileSync(join(root, "etc", "ld.so.cache"), "glibc-ld.so.cache1.1\0libvulkan.so.1\0/usr/lib/x86_64-linux-gnu/libvulkan.so.1\0");
      expect(missingGpu(root)).toMatch(/no GPU device node/);
      mkdirSync(join(root, "dev", "dri"), { recursive: true });
      writeFileSync(join(root, "dev", "dri", "renderD128"), "");
      expect(missingGpu(root)).toBeNull();
    } finally {
      if (saved !== undefined) process.env.LD_LIBRARY_PATH = saved;
    }
  });

  it("says why it passed over each GPU backend, and loads Dawn only when there may be a GPU", async () => {
    const { backend, passedOver } = await pickAuto({ threads: 1 });
    if (backend.name === "cpu") expect(passedOver.map((p) => p.split(":")[0])).toEqual(["cuda", "webgpu"]);
    if (missingGpu()) expect((globalThis as Record<string, unknown>).GPUBufferUsage).toBeUndefined();
    backend.destroy();
  });
});
