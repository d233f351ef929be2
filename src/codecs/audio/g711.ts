// ITU-T G.711 μ-law and A-law (telephony audio at 8 kHz: `g711_ulaw`/`audio/pcmu` and
// `g711_alaw`/`audio/pcma` in the realtime protocols). Bit-exact with the ITU-T G.191 reference.
import { nativeAddon } from '../../native/addon.js';

export type G711Law = 'mulaw' | 'alaw';

export const G711_SAMPLE_RATE = 8000;

/** One byte per sample in, 16-bit linear samples out. */
export function g711Decode(law: G711Law, bytes: Uint8Array): Int16Array {
  const addon = nativeAddon();
  return law === 'mulaw' ? addon.mulawDecode(bytes) : addon.alawDecode(bytes);
}

/** 16-bit linear samples in, one byte per sample out. */
export function g711Encode(law: G711Law, samples: Int16Array): Buffer {
  const addon = nativeAddon();
  return law === 'mulaw' ? addon.mulawEncode(samples) : addon.alawEncode(samples);
}
