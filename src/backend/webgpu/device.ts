// Adapter and device creation for the WebGPU backend (Dawn through the `webgpu` npm package).
// Dawn's GPU object must stay referenced for as long as any device made from it lives: when it
// is collected the native instance goes away under the device and the process crashes. So the
// GpuContext holds it next to the device.
export interface GpuContext {
  /** Dawn's GPU object (navigator.gpu); kept referenced for the device's whole life. */
  readonly gpu: GPU;
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
  /** Optional features we enabled on the device. */
  readonly f16: boolean;
  readonly subgroups: boolean;
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  features: string[];
  limits: Record<string, number>;
}

interface DawnModule {
  create(options: string[]): GPU;
  globals: object;
}

let dawn: DawnModule | null = null;
let dawnError: Error | null = null;

/** Loads the `webgpu` package once and installs its globals (GPUBufferUsage, GPUMapMode, ...). */
async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  if (dawnError) throw dawnError;
  try {
    const mod = (await import("webgpu")) as unknown as DawnModule;
    Object.assign(globalThis, mod.globals);
    dawn = mod;
    return mod;
  } catch (e) {
    dawnError = new Error(`webgpu: cannot load Dawn (the "webgpu" npm package): ${(e as Error).message}`);
    throw dawnError;
  }
}

/** Limits we ask for: the adapter's maxima for the few that our kernels press against. */
const WANTED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxStorageBuffersPerShaderStage",
] as const;

export async function createContext(): Promise<GpuContext> {
  const mod = await loadDawn();
  const gpu = mod.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new Error(
      "webgpu: no adapter found. Dawn loaded, but no Vulkan/Metal/D3D12 device is usable " +
        "(on a CPU-only Linux machine install Mesa's lavapipe: mesa-vulkan-drivers >= 24 and libvulkan1).",
    );
  }
  const f16 = adapter.features.has("shader-f16");
  const subgroups = adapter.features.has("subgroups");
  const requiredFeatures: GPUFeatureName[] = [];
  if (f16) requiredFeatures.push("shader-f16");
  if (subgroups) requiredFeatures.push("subgroups" as GPUFeatureName);
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) requiredLimits[k] = (adapter.limits as unknown as Record<string, number>)[k];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  if (!device) throw new Error("webgpu: the adapter refused to create a device");
  return { gpu, adapter, device, f16, subgroups };
}

export function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = adapter.info;
  const limits: Record<string, number> = {};
  // Limits are getters on the prototype, not own properties.
  const proto = Object.getPrototypeOf(adapter.limits) as object;
  for (const k of Object.getOwnPropertyNames(proto)) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[k];
    if (typeof v === "number") limits[k] = v;
  }
  return {
    vendor: info?.vendor ?? "",
    architecture: info?.architecture ?? "",
    device: info?.device ?? "",
    description: info?.description ?? "",
    features: [...adapter.features].map(String).sort(),
    limits,
  };
}
