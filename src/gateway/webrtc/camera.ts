// Camera frames from a WebRTC video track into the session's image input. The track delivers
// decoded I420 frames at the camera's rate (15-30 fps); the session wants a picture now and then
// (`input_image_buffer.append` frames are attached to the next user turn). One frame per interval
// is kept, converted off the event loop (native I420 -> RGB, then sharp to JPEG, scaled down to
// `maxSide`), at most one conversion at a time; frames arriving meanwhile are skipped.
import sharp from 'sharp';
import { nativeAddon } from '../../native/addon.js';
import type { I420Frame } from './media.js';

export interface CameraSamplerOptions {
  /** Pictures per second kept (default 1). */
  fps?: number;
  /** Longest side of the JPEG (default 1280; smaller frames are not enlarged). */
  maxSide?: number;
  quality?: number;
  onImage: (jpeg: Buffer) => void;
  onError?: (err: Error) => void;
}

export class CameraSampler {
  private nextDueMs = -Infinity;
  private busy = false;
  private closed = false;
  readonly stats = { received: 0, kept: 0, failed: 0 };

  constructor(private readonly options: CameraSamplerOptions) {}

  push(frame: I420Frame, atMs: number): void {
    this.stats.received++;
    if (this.closed || this.busy || atMs < this.nextDueMs) return;
    const { width, height } = frame;
    if (!(width > 0 && height > 0) || frame.data.length < width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2)) return;
    this.nextDueMs = atMs + 1000 / (this.options.fps ?? 1);
    this.busy = true;
    // The sink reuses its buffer: copy before going async.
    const data = Uint8Array.from(frame.data.subarray(0, width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2)));
    void this.convert(data, width, height).finally(() => (this.busy = false));
  }

  close(): void {
    this.closed = true;
  }

  private async convert(data: Uint8Array, width: number, height: number): Promise<void> {
    try {
      const rgb = await nativeAddon().i420ToRgb(data, width, height);
      const side = this.options.maxSide ?? 1280;
      const jpeg = await sharp(rgb, { raw: { width, height, channels: 3 } })
        .resize({ width: side, height: side, fit: 'inside', withoutEnlargement: true })
        .jpeg({ quality: this.options.quality ?? 85 })
        .toBuffer();
      if (this.closed) return;
      this.stats.kept++;
      this.options.onImage(jpeg);
    } catch (err) {
      this.stats.failed++;
      if (!this.closed) this.options.onError?.(err as Error);
    }
  }
}
