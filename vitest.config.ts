import { defineConfig } from "vitest/config";

// ANVIL_TEST_JSON=path also writes a JSON report there (CI sums them into one closing line).
const json = process.env.ANVIL_TEST_JSON;

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: "forks",
    // Native kernels use both cores through OpenMP; running test files in parallel only thrashes.
    fileParallelism: false,
    reporters: json ? ["default", ["json", { outputFile: json }]] : ["default"],
  },
});
