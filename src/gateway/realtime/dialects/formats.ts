// Audio format names of each dialect <-> the session's `AudioFormat` (realtime-protocol.md §2.3,
// §2.5). OpenAI PCM is 24 kHz only; G.711 is 8 kHz by definition; DashScope input is PCM16 16 kHz
// and its output PCM16 24 kHz whatever the spelling.
import type { AudioFormat } from '../model.js';
import { errors, type Fields } from './common.js';

export const PCM16_24K: AudioFormat = { encoding: 'pcm16', rate: 24000 };
export const PCM16_16K: AudioFormat = { encoding: 'pcm16', rate: 16000 };
export const G711_ULAW: AudioFormat = { encoding: 'g711_ulaw', rate: 8000 };
export const G711_ALAW: AudioFormat = { encoding: 'g711_alaw', rate: 8000 };

// ---- GA: objects {type:"audio/pcm", rate:24000} | {type:"audio/pcmu"} | {type:"audio/pcma"}

const GA_FORMAT_TYPES = ['audio/pcm', 'audio/pcmu', 'audio/pcma'] as const;
const OPENAI_PCM_RATE = 24000;

export function parseGaFormat(parent: Fields, key: string): AudioFormat | undefined {
  const format = parent.object(key, ['type', 'rate']);
  if (!format) return undefined;
  const type = format.requiredOneOf('type', GA_FORMAT_TYPES);
  if (type !== 'audio/pcm') {
    if (format.has('rate')) throw errors.unknownParameter(format.param('rate'));
    return type === 'audio/pcmu' ? G711_ULAW : G711_ALAW;
  }
  const rate = format.number('rate', { integer: true, min: OPENAI_PCM_RATE, max: OPENAI_PCM_RATE });
  return { encoding: 'pcm16', rate: rate ?? OPENAI_PCM_RATE };
}

export function renderGaFormat(format: AudioFormat): Record<string, unknown> {
  switch (format.encoding) {
    case 'pcm16':
      return { type: 'audio/pcm', rate: format.rate };
    case 'g711_ulaw':
      return { type: 'audio/pcmu' };
    case 'g711_alaw':
      return { type: 'audio/pcma' };
  }
}

// ---- beta: "pcm16" | "g711_ulaw" | "g711_alaw"

const BETA_FORMATS = ['pcm16', 'g711_ulaw', 'g711_alaw'] as const;

export function parseBetaFormat(fields: Fields, key: string): AudioFormat | undefined {
  const name = fields.oneOf(key, BETA_FORMATS);
  if (name === undefined) return undefined;
  return name === 'pcm16' ? PCM16_24K : name === 'g711_ulaw' ? G711_ULAW : G711_ALAW;
}

export function renderBetaFormat(format: AudioFormat): string {
  return format.encoding;
}

// ---- DashScope: flat names (input "pcm16"/"pcm", output "pcm24"/"pcm16"/"pcm"), or the newer
// `audio.{input,output}.format {type:"pcm", sample_rate}`.

export const DASHSCOPE_INPUT_FORMATS = ['pcm16', 'pcm'] as const;
export const DASHSCOPE_OUTPUT_FORMATS = ['pcm24', 'pcm16', 'pcm'] as const;

export function parseDashscopeFlatFormat(fields: Fields, key: string, direction: 'input' | 'output'): AudioFormat | undefined {
  const name = fields.oneOf(key, direction === 'input' ? DASHSCOPE_INPUT_FORMATS : DASHSCOPE_OUTPUT_FORMATS);
  if (name === undefined) return undefined;
  return direction === 'input' ? PCM16_16K : PCM16_24K;
}

export function parseDashscopeFormatObject(parent: Fields, key: string, direction: 'input' | 'output'): AudioFormat | undefined {
  const format = parent.object(key, ['type', 'sample_rate']);
  if (!format) return undefined;
  format.requiredOneOf('type', ['pcm', 'pcm16'] as const);
  const fixed = direction === 'input' ? PCM16_16K : PCM16_24K;
  format.number('sample_rate', { integer: true, min: fixed.rate, max: fixed.rate });
  return fixed;
}
