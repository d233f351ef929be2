// --ice-servers: a JSON list of RTCIceServer for WebRTC calls; anything else stops start-up with
// the setting named.
import { describe, expect, it } from 'vitest';
import { parseIceServers } from '../src/gateway/webrtc/wrtc_peer.js';
import { startTestGateway } from './helpers/gateway.js';

describe('ICE servers setting', () => {
  it('reads STUN and TURN servers with credentials', () => {
    expect(parseIceServers('')).toEqual([]);
    expect(parseIceServers('[{"urls":"stun:stun.example.org:3478"},{"urls":["turn:turn.example.org","turns:turn.example.org:5349"],"username":"u","credential":"p"}]')).toEqual([
      { urls: 'stun:stun.example.org:3478' },
      { urls: ['turn:turn.example.org', 'turns:turn.example.org:5349'], username: 'u', credential: 'p' },
    ]);
  });

  it('names what is wrong', () => {
    expect(() => parseIceServers('stun:x')).toThrow(/not JSON/);
    expect(() => parseIceServers('{"urls":"stun:x"}')).toThrow(/JSON list/);
    expect(() => parseIceServers('[{"urls":"http://x"}]')).toThrow(/\[0\]\.urls must be stun:/);
    expect(() => parseIceServers('[{"urls":"turn:x","username":1}]')).toThrow(/\[0\]\.username must be a string/);
  });

  it('a bad value stops the gateway from starting, naming the setting', async () => {
    await expect(startTestGateway({ iceServers: '[{"urls":"http://x"}]' })).rejects.toThrow(/--ice-servers/);
  });
});
