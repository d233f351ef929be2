// Errors raised by media transforms. Each has a stable code from this catalogue, a message that
// says what was wrong with the input, and, where it applies, the offending field or parameter.
// Gateway layers map these onto protocol errors without rewording them.

export const CODEC_ERROR_CODES = [
  // audio input
  'audio_empty',
  'audio_too_short',
  'audio_too_long',
  'audio_odd_byte_count',
  'audio_invalid_base64',
  'audio_sample_rate_unsupported',
  'audio_channels_unsupported',
  'audio_format_unsupported',
  'audio_decode_failed',
  'audio_invalid_samples',
  'audio_option_invalid',
  'opus_packet_invalid',
  // audio processing
  'resample_rate_invalid',
  'vad_model_unavailable',
  'vad_config_invalid',
  // external decoders
  'ffmpeg_unavailable',
  'ffmpeg_failed',
  'ffmpeg_timeout',
  // voice activity detection falling behind its bound
  'vad_overloaded',
  // one input chunk above the per-append bound (realtime: 15 MiB decoded)
  'audio_chunk_too_large',
  // image input
  'image_empty',
  'image_format_unsupported',
  'image_decode_failed',
  'image_too_large',
  'image_aspect_ratio_invalid',
  'image_option_invalid',
  // video input (files and live frames)
  'video_empty',
  'video_format_unsupported',
  'video_decode_failed',
  'video_too_short',
  'video_too_long',
  'video_too_large',
  'video_aspect_ratio_invalid',
  'video_option_invalid',
  'frame_invalid',
  'frame_sampler_closed',
  // text tokenizer
  'tokenizer_unavailable',
  'token_id_invalid',
] as const;

export type CodecErrorCode = (typeof CODEC_ERROR_CODES)[number];

export class CodecError extends Error {
  constructor(
    readonly code: CodecErrorCode,
    message: string,
    /** The offending field or parameter, e.g. `audio`, `sampleRate`, `input_audio_format`. */
    readonly param?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CodecError';
  }
}
