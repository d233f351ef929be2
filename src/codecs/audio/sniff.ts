// Container detection from magic bytes: picks the decoding path (WAV natively, the rest through
// ffmpeg) and turns "ffmpeg failed" into a precise error (a PNG sent as audio, a truncated MP4).

/** Containers that carry audio (or may: `mp4`, `webm`, `matroska`, `avi` also hold video). */
export type AudioContainer =
  | 'wav'
  | 'mp3'
  | 'aac'
  | 'mp4'
  | 'ogg'
  | 'webm'
  | 'matroska'
  | 'flac'
  | 'aiff'
  | 'caf'
  | 'amr'
  | 'asf'
  | 'au'
  | 'avi'
  | 'mpegts'
  | 'flv';

/** Formats recognised as not being audio at all. */
export type NonAudioFormat = 'png' | 'jpeg' | 'gif' | 'webp' | 'pdf' | 'zip' | 'gzip' | 'midi' | 'text';

export interface SniffResult {
  format: AudioContainer | NonAudioFormat | 'unknown';
  /** true: an audio container; false: recognised and not audio; undefined: not recognised. */
  audio: boolean | undefined;
  /** Human-readable name for messages, e.g. "MP4/M4A (brand M4A)". */
  label: string;
}

const NON_AUDIO_LABELS: Record<NonAudioFormat, string> = {
  png: 'a PNG image',
  jpeg: 'a JPEG image',
  gif: 'a GIF image',
  webp: 'a WebP image',
  pdf: 'a PDF document',
  zip: 'a ZIP archive',
  gzip: 'a gzip archive',
  midi: 'a MIDI file (note events, not sampled audio)',
  text: 'text (base64 or JSON sent as raw bytes?)',
};

function ascii(bytes: Uint8Array, start: number, length: number): string {
  if (bytes.length < start + length) return '';
  return String.fromCharCode(...bytes.subarray(start, start + length));
}

function startsWith(bytes: Uint8Array, magic: readonly number[], offset = 0): boolean {
  if (bytes.length < offset + magic.length) return false;
  return magic.every((b, i) => bytes[offset + i] === b);
}

/** MPEG-1/2/2.5 Layer I-III frame header at `i` (sync, and no reserved field values). */
function isMpegAudioFrame(b: Uint8Array, i: number): boolean {
  if (b.length < i + 4 || b[i] !== 0xff || (b[i + 1]! & 0xe0) !== 0xe0) return false;
  const version = (b[i + 1]! >> 3) & 3;
  const layer = (b[i + 1]! >> 1) & 3;
  const bitrate = b[i + 2]! >> 4;
  const rate = (b[i + 2]! >> 2) & 3;
  return version !== 1 && layer !== 0 && bitrate !== 15 && rate !== 3;
}

/** ADTS (raw AAC) frame header at `i`: 12-bit sync, layer 0, valid sampling index. */
function isAdtsFrame(b: Uint8Array, i: number): boolean {
  return b.length >= i + 7 && b[i] === 0xff && (b[i + 1]! & 0xf6) === 0xf0 && ((b[i + 2]! >> 2) & 0xf) < 13;
}

function looksLikeText(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, 1024);
  if (n < 4) return false;
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!;
    if (!(c >= 0x20 && c < 0x7f) && c !== 0x09 && c !== 0x0a && c !== 0x0d) return false;
  }
  return true;
}

export function sniffContainer(bytes: Uint8Array): SniffResult {
  const audio = (format: AudioContainer, label: string): SniffResult => ({ format, audio: true, label });
  const riffType = ascii(bytes, 8, 4);
  const riff = ascii(bytes, 0, 4);
  if ((riff === 'RIFF' || riff === 'RF64' || riff === 'BW64') && riffType === 'WAVE') return audio('wav', 'WAV');
  if (riff === 'RIFX' && riffType === 'WAVE') return audio('wav', 'WAV (big-endian RIFX)');
  if (riff === 'RIFF' && riffType === 'AVI ') return audio('avi', 'AVI');
  if (riff === 'RIFF' && riffType === 'WEBP') return notAudio('webp');
  if (riff === 'fLaC') return audio('flac', 'FLAC');
  if (riff === 'OggS') return audio('ogg', 'Ogg');
  if (riff === 'caff') return audio('caf', 'Core Audio (CAF)');
  if (riff === '.snd') return audio('au', 'Sun/NeXT AU');
  if (riff === 'FORM' && (riffType === 'AIFF' || riffType === 'AIFC')) return audio('aiff', 'AIFF');
  if (riff === 'MThd') return notAudio('midi');
  if (ascii(bytes, 0, 5) === '#!AMR') return audio('amr', 'AMR');
  if (ascii(bytes, 0, 3) === 'FLV') return audio('flv', 'FLV');
  const box = ascii(bytes, 4, 4);
  if (box === 'ftyp') return audio('mp4', `MP4/M4A (brand ${ascii(bytes, 8, 4).trim() || '?'})`);
  if (box === 'moov' || box === 'mdat' || box === 'wide' || box === 'free' || box === 'skip') {
    return audio('mp4', 'QuickTime/MP4');
  }
  if (startsWith(bytes, [0x1a, 0x45, 0xdf, 0xa3])) {
    // The EBML header's DocType sits within the first few dozen bytes.
    const head = ascii(bytes, 0, Math.min(bytes.length, 64));
    return head.includes('webm') ? audio('webm', 'WebM') : audio('matroska', 'Matroska');
  }
  if (startsWith(bytes, [0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11])) return audio('asf', 'ASF/WMA');
  if (bytes.length >= 189 && bytes[0] === 0x47 && bytes[188] === 0x47) return audio('mpegts', 'MPEG-TS');
  if (ascii(bytes, 0, 3) === 'ID3') {
    // An ID3v2 tag (syncsafe size) precedes MP3 or, rarely, ADTS AAC.
    const size = ((bytes[6]! & 0x7f) << 21) | ((bytes[7]! & 0x7f) << 14) | ((bytes[8]! & 0x7f) << 7) | (bytes[9]! & 0x7f);
    const footer = (bytes[5]! & 0x10) !== 0 ? 10 : 0;
    const at = 10 + size + footer;
    if (isAdtsFrame(bytes, at)) return audio('aac', 'AAC (ADTS)');
    return audio('mp3', 'MP3');
  }
  if (isAdtsFrame(bytes, 0)) return audio('aac', 'AAC (ADTS)');
  if (isMpegAudioFrame(bytes, 0)) return audio('mp3', 'MP3');
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47])) return notAudio('png');
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return notAudio('jpeg');
  if (ascii(bytes, 0, 4) === 'GIF8') return notAudio('gif');
  if (ascii(bytes, 0, 5) === '%PDF-') return notAudio('pdf');
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])) return notAudio('zip');
  if (startsWith(bytes, [0x1f, 0x8b])) return notAudio('gzip');
  if (looksLikeText(bytes)) return notAudio('text');
  return { format: 'unknown', audio: undefined, label: 'unrecognised data' };
}

function notAudio(format: NonAudioFormat): SniffResult {
  return { format, audio: false, label: NON_AUDIO_LABELS[format] };
}
