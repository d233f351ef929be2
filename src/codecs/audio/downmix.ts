// Interleaved multichannel float samples to mono by averaging the channels, as librosa.to_mono
// does (numpy mean over channels in float32: sum channel by channel, then divide).
import { CodecError } from '../errors.js';

/** Mono samples from `interleaved` (frames x channels); a mono input is returned as is. */
export function downmixInterleaved(interleaved: Float32Array, channels: number): Float32Array {
  if (!Number.isSafeInteger(channels) || channels < 1) {
    throw new CodecError('audio_channels_unsupported', `channel count must be a positive integer (got ${channels})`, 'channels');
  }
  if (channels === 1) return interleaved;
  if (interleaved.length % channels !== 0) {
    throw new RangeError(`${interleaved.length} samples is not a whole number of ${channels}-channel frames`);
  }
  const frames = interleaved.length / channels;
  const mono = new Float32Array(frames);
  if (channels === 2) {
    // (a + b) / 2 rounded once to float32 equals numpy's float32 add then halve.
    for (let i = 0, j = 0; i < frames; i++, j += 2) mono[i] = (interleaved[j]! + interleaved[j + 1]!) / 2;
    return mono;
  }
  for (let i = 0, j = 0; i < frames; i++) {
    let acc = interleaved[j++]!;
    for (let c = 1; c < channels; c++) acc = Math.fround(acc + interleaved[j++]!);
    mono[i] = acc / channels;
  }
  return mono;
}
