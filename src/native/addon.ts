// The one loader of the C++ addon (native/). Everything that calls native code goes through
// `nativeAddon()`, so a missing or stale build fails in one place with one clear message.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bumped in native/src/addon.cc whenever the binding surface changes. */
export const NATIVE_ABI_VERSION = 1;

export interface NativeAddon {
  pcm16leToFloat32(bytes: Uint8Array): Float32Array;
  float32ToPcm16le(samples: Float32Array): Buffer;
  mulawEncode(samples: Int16Array): Buffer;
  mulawDecode(bytes: Uint8Array): Int16Array;
  alawEncode(samples: Int16Array): Buffer;
  alawDecode(bytes: Uint8Array): Int16Array;
  readonly simdLevel: 'avx2' | 'sse2' | 'neon' | 'scalar';
  readonly abiVersion: number;
}

export class NativeAddonError extends Error {
  readonly code = 'OMNI_NATIVE_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NativeAddonError';
  }
}

// src/native/ and dist/native/ both sit two levels below the package root.
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NATIVE_ADDON_PATH = join(packageRoot, 'native', 'build', 'Release', 'omni_native.node');

let loaded: NativeAddon | undefined;

export function nativeAddon(): NativeAddon {
  if (loaded) return loaded;
  const path = process.env.OMNI_NATIVE_ADDON || NATIVE_ADDON_PATH;
  const howToBuild =
    'build it with `npm install` (or `npm run build`), which needs python3, make and a C++17 compiler';
  if (!existsSync(path)) {
    throw new NativeAddonError(`the native addon is not built: ${path} is missing; ${howToBuild}`);
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (cause) {
    throw new NativeAddonError(
      `the native addon at ${path} failed to load (${(cause as Error).message}); rebuild it: ${howToBuild}`,
      { cause },
    );
  }
  if (addon.abiVersion !== NATIVE_ABI_VERSION) {
    throw new NativeAddonError(
      `the native addon at ${path} is stale (binding version ${addon.abiVersion}, expected ${NATIVE_ABI_VERSION}); ${howToBuild}`,
    );
  }
  loaded = addon;
  return addon;
}

export type NativeStatus = { loaded: true; simdLevel: string } | { loaded: false; error: string };

export function nativeStatus(): NativeStatus {
  try {
    return { loaded: true, simdLevel: nativeAddon().simdLevel };
  } catch (err) {
    return { loaded: false, error: (err as Error).message };
  }
}
