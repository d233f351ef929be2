/*
 * Reference device client for the Omni Gateway device link (docs/device-protocol.md).
 *
 * Streams a WAV file (PCM16) to `ws://host:port/v1/device`, asks for one reply in manual turn mode
 * (input_audio_buffer.commit + response.create) and writes the spoken reply to a WAV file. Plain
 * C11 + POSIX: sockets, a hand-written minimal WebSocket client (HTTP/1.1 upgrade with the
 * Sec-WebSocket-Accept check, masked client frames, fragmented messages, ping/pong, close) and the
 * device framing `type (1) | length (4, big-endian) | payload`. Opus is optional: build with
 * `make OPUS=1` (libopus) and pass --opus to send and receive Opus packets instead of PCM16.
 *
 * Output on stdout, one line each, for scripts and tests:
 *   welcome <json>           the gateway's welcome
 *   event <type>             every JSON event
 *   error <code> <param> <message>
 *   text <all text or transcript deltas of the reply>
 *   done <response status>
 *   audio <samples> <rate>   what was written to the output WAV
 * Exit status: 0 when the reply completed (or stopped at max tokens), 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_OPUS
#include <opus.h>
#endif

/* Device frame types (docs/device-protocol.md §3). */
enum { F_HELLO = 0x01, F_WELCOME = 0x02, F_EVENT = 0x03, F_AUDIO_IN = 0x04, F_AUDIO_OUT = 0x05, F_JPEG = 0x06, F_ERROR = 0x07 };

static _Noreturn void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "device_client: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

/* ---------------------------------------------------------------------------------------------
 * Growable byte buffer */

typedef struct {
  uint8_t *data;
  size_t len, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra) cap *= 2;
  b->data = realloc(b->data, cap);
  if (!b->data) die("out of memory");
  b->cap = cap;
}

static void buf_append(buf_t *b, const void *p, size_t n) {
  buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void buf_consume(buf_t *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

/* ---------------------------------------------------------------------------------------------
 * SHA-1 and base64, for the handshake's Sec-WebSocket-Accept check (RFC 6455 §4.2.2) */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t total = ((len + 8) / 64 + 1) * 64;
  uint8_t *m = calloc(total, 1);
  if (!m) die("out of memory");
  memcpy(m, msg, len);
  m[len] = 0x80;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) m[total - 1 - i] = (uint8_t)(bits >> (8 * i));
  for (size_t off = 0; off < total; off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)m[off + 4 * i] << 24 | (uint32_t)m[off + 4 * i + 1] << 16 | (uint32_t)m[off + 4 * i + 2] << 8 | m[off + 4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
      else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
      else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      else f = b ^ c ^ d, k = 0xCA62C1D6;
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  free(m);
  for (int i = 0; i < 20; i++) out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const uint8_t *in, size_t n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = 0;
}

static void random_bytes(uint8_t *p, size_t n) {
  static int fd = -1;
  if (fd < 0) fd = open("/dev/urandom", O_RDONLY);
  if (fd < 0 || read(fd, p, n) != (ssize_t)n) die("cannot read /dev/urandom");
}

/* ---------------------------------------------------------------------------------------------
 * Minimal WebSocket client (RFC 6455): binary messages out, whole messages in */

typedef struct {
  int fd;
  buf_t in;       /* bytes read from the socket, not yet parsed */
  buf_t message;  /* a fragmented message being assembled */
  int message_op; /* its opcode */
  int closed;     /* a close frame was received */
  int close_code;
} ws_t;

static void write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("send failed: %s", strerror(errno));
    p += w, n -= (size_t)w;
  }
}

/* One masked frame (client frames are always masked, §5.3). */
static void ws_send(ws_t *ws, int opcode, const uint8_t *payload, size_t n) {
  uint8_t head[14];
  size_t h = 0;
  head[h++] = (uint8_t)(0x80 | opcode);
  if (n < 126) {
    head[h++] = (uint8_t)(0x80 | n);
  } else if (n < 65536) {
    head[h++] = 0x80 | 126;
    head[h++] = (uint8_t)(n >> 8), head[h++] = (uint8_t)n;
  } else {
    head[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) head[h++] = (uint8_t)((uint64_t)n >> (8 * i));
  }
  uint8_t mask[4];
  random_bytes(mask, 4);
  memcpy(head + h, mask, 4);
  h += 4;
  uint8_t *frame = malloc(h + n + 1);
  if (!frame) die("out of memory");
  memcpy(frame, head, h);
  for (size_t i = 0; i < n; i++) frame[h + i] = payload[i] ^ mask[i & 3];
  write_all(ws->fd, frame, h + n);
  free(frame);
}

static int ws_connect(ws_t *ws, const char *host, const char *port, const char *path, const char *auth_key) {
  struct addrinfo hints = {0}, *res, *ai;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) die("cannot resolve %s: %s", host, gai_strerror(rc));
  int fd = -1;
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) die("cannot connect to %s:%s", host, port);
  memset(ws, 0, sizeof *ws);
  ws->fd = fd;

  uint8_t nonce[16];
  char key[32], req[2048];
  random_bytes(nonce, sizeof nonce);
  base64(nonce, sizeof nonce, key);
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                   path, host, port, key);
  if (auth_key) n += snprintf(req + n, sizeof req - (size_t)n, "Authorization: Bearer %s\r\n", auth_key);
  n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
  if (n >= (int)sizeof req) die("request too long");
  write_all(fd, (uint8_t *)req, (size_t)n);

  /* Read the response head; bytes after it are the first frames. */
  char *end = NULL;
  while (!end) {
    uint8_t chunk[1024];
    ssize_t r = recv(fd, chunk, sizeof chunk, 0);
    if (r <= 0) die("connection closed during the handshake");
    buf_append(&ws->in, chunk, (size_t)r);
    buf_reserve(&ws->in, 1);
    ws->in.data[ws->in.len] = 0;
    end = strstr((char *)ws->in.data, "\r\n\r\n");
    if (!end && ws->in.len > 16384) die("handshake response too long");
  }
  size_t head_len = (size_t)(end - (char *)ws->in.data) + 4;
  if (strncmp((char *)ws->in.data, "HTTP/1.1 101", 12) != 0) {
    fprintf(stderr, "%.*s\n", (int)head_len, (char *)ws->in.data);
    die("the gateway refused the upgrade");
  }
  char accept_src[128];
  uint8_t digest[20];
  char expected[32];
  snprintf(accept_src, sizeof accept_src, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  sha1((uint8_t *)accept_src, strlen(accept_src), digest);
  base64(digest, 20, expected);
  int ok = 0;
  for (char *line = (char *)ws->in.data; line < end; line = strstr(line, "\r\n") + 2) {
    if (strncasecmp(line, "Sec-WebSocket-Accept:", 21) == 0) {
      char *v = line + 21;
      while (*v == ' ') v++;
      ok = strncmp(v, expected, strlen(expected)) == 0;
    }
  }
  if (!ok) die("bad Sec-WebSocket-Accept in the handshake response");
  buf_consume(&ws->in, head_len);
  return 0;
}

/*
 * Parses one complete message from `ws->in` if there is one: returns its opcode (1 text, 2 binary)
 * with the payload in ws->message, 0 when more bytes are needed. Pings are answered, close frames
 * are echoed and recorded.
 */
static int ws_parse(ws_t *ws) {
  for (;;) {
    buf_t *in = &ws->in;
    if (in->len < 2) return 0;
    int fin = in->data[0] & 0x80, op = in->data[0] & 0x0f;
    uint64_t len = in->data[1] & 0x7f;
    size_t h = 2;
    if (in->data[1] & 0x80) die("the server sent a masked frame");
    if (len == 126) {
      if (in->len < 4) return 0;
      len = (uint64_t)in->data[2] << 8 | in->data[3];
      h = 4;
    } else if (len == 127) {
      if (in->len < 10) return 0;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | in->data[2 + i];
      h = 10;
    }
    if (len > 64u * 1024 * 1024) die("frame of %llu bytes is too large", (unsigned long long)len);
    if (in->len < h + len) return 0;
    uint8_t *p = in->data + h;
    if (op == 0x9) { /* ping -> pong with the same payload */
      ws_send(ws, 0xA, p, (size_t)len);
    } else if (op == 0xA) { /* pong */
    } else if (op == 0x8) { /* close */
      ws->closed = 1;
      ws->close_code = len >= 2 ? (p[0] << 8 | p[1]) : 1005;
      if (len >= 2) fprintf(stderr, "device_client: gateway closed the link: %d %.*s\n", ws->close_code, (int)len - 2, (char *)p + 2);
      ws_send(ws, 0x8, p, len >= 2 ? 2 : 0);
      buf_consume(in, h + (size_t)len);
      return 0;
    } else {
      if (op != 0) {
        ws->message.len = 0;
        ws->message_op = op;
      }
      buf_append(&ws->message, p, (size_t)len);
      if (fin) {
        buf_consume(in, h + (size_t)len);
        return ws->message_op;
      }
    }
    buf_consume(in, h + (size_t)len);
  }
}

/* Reads what the socket has within `timeout_ms`; returns -1 when the connection is gone. */
static int ws_fill(ws_t *ws, int timeout_ms) {
  struct pollfd pfd = {.fd = ws->fd, .events = POLLIN};
  int r = poll(&pfd, 1, timeout_ms);
  if (r <= 0) return 0;
  uint8_t chunk[16384];
  ssize_t n = recv(ws->fd, chunk, sizeof chunk, 0);
  if (n <= 0) return -1;
  buf_append(&ws->in, chunk, (size_t)n);
  return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Device framing: type | 32-bit big-endian length | payload */

static void device_send(ws_t *ws, uint8_t type, const void *payload, size_t n) {
  uint8_t *frame = malloc(5 + n);
  if (!frame) die("out of memory");
  frame[0] = type;
  frame[1] = (uint8_t)(n >> 24), frame[2] = (uint8_t)(n >> 16), frame[3] = (uint8_t)(n >> 8), frame[4] = (uint8_t)n;
  if (n) memcpy(frame + 5, payload, n);
  ws_send(ws, 0x2, frame, 5 + n);
  free(frame);
}

static void device_send_json(ws_t *ws, uint8_t type, const char *json) { device_send(ws, type, json, strlen(json)); }

/* ---------------------------------------------------------------------------------------------
 * A tiny JSON scanner: enough to read the fields this client needs from the gateway's compact
 * JSON (JSON.stringify output, no whitespace). Not a general parser. */

/* Copies the string value of the first `"key":"..."` into out (unescaped, \uXXXX as UTF-8). */
static int json_string(const char *json, const char *key, char *out, size_t cap) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = strstr(json, pat);
  if (!p) return 0;
  p += strlen(pat);
  size_t o = 0;
  while (*p && *p != '"') {
    unsigned c = (unsigned char)*p++;
    if (c == '\\') {
      char e = *p++;
      if (e == 'n') c = '\n';
      else if (e == 't') c = '\t';
      else if (e == 'r') c = '\r';
      else if (e == 'b') c = '\b';
      else if (e == 'f') c = '\f';
      else if (e == 'u') {
        unsigned v = 0;
        for (int i = 0; i < 4 && *p; i++, p++) v = v * 16 + (unsigned)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
        char u[4];
        size_t k = 0;
        if (v < 0x80) u[k++] = (char)v;
        else if (v < 0x800) u[k++] = (char)(0xC0 | v >> 6), u[k++] = (char)(0x80 | (v & 63));
        else u[k++] = (char)(0xE0 | v >> 12), u[k++] = (char)(0x80 | (v >> 6 & 63)), u[k++] = (char)(0x80 | (v & 63));
        for (size_t i = 0; i < k && o + 1 < cap; i++) out[o++] = u[i];
        continue;
      } else c = (unsigned char)e;
    }
    if (o + 1 < cap) out[o++] = (char)c;
  }
  out[o] = 0;
  return 1;
}

/* ---------------------------------------------------------------------------------------------
 * WAV in and out (PCM16) */

typedef struct {
  int16_t *samples; /* mono */
  size_t count;
  int rate;
} pcm_t;

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static pcm_t read_wav(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) die("cannot open %s: %s", path, strerror(errno));
  buf_t b = {0};
  uint8_t chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&b, chunk, n);
  fclose(f);
  if (b.len < 12 || memcmp(b.data, "RIFF", 4) || memcmp(b.data + 8, "WAVE", 4)) die("%s is not a RIFF/WAVE file", path);
  int channels = 0, bits = 0, format = 0;
  pcm_t pcm = {0};
  for (size_t at = 12; at + 8 <= b.len;) {
    uint32_t size = le32(b.data + at + 4);
    const uint8_t *body = b.data + at + 8;
    size_t avail = b.len - at - 8;
    if (size > avail) size = (uint32_t)avail; /* streamed WAVs may carry a wrong size */
    if (!memcmp(b.data + at, "fmt ", 4) && size >= 16) {
      format = le16(body), channels = le16(body + 2), pcm.rate = (int)le32(body + 4), bits = le16(body + 14);
    } else if (!memcmp(b.data + at, "data", 4)) {
      if (format != 1 || bits != 16 || channels < 1) die("%s: only PCM16 WAV is supported (format %d, %d bits)", path, format, bits);
      pcm.count = size / (2u * (unsigned)channels);
      pcm.samples = malloc(pcm.count * 2 + 2);
      for (size_t i = 0; i < pcm.count; i++) pcm.samples[i] = (int16_t)le16(body + i * 2u * (unsigned)channels); /* first channel */
    }
    at += 8 + size + (size & 1);
  }
  free(b.data);
  if (!pcm.samples) die("%s has no data chunk", path);
  return pcm;
}

static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24); }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

static void write_wav(const char *path, const uint8_t *pcm16, size_t bytes, int rate) {
  uint8_t h[44];
  memcpy(h, "RIFF", 4), put32(h + 4, (uint32_t)(36 + bytes)), memcpy(h + 8, "WAVEfmt ", 8);
  put32(h + 16, 16), put16(h + 20, 1), put16(h + 22, 1), put32(h + 24, (uint32_t)rate), put32(h + 28, (uint32_t)rate * 2), put16(h + 32, 2), put16(h + 34, 16);
  memcpy(h + 36, "data", 4), put32(h + 40, (uint32_t)bytes);
  FILE *f = fopen(path, "wb");
  if (!f) die("cannot write %s: %s", path, strerror(errno));
  fwrite(h, 1, 44, f);
  if (bytes) fwrite(pcm16, 1, bytes, f); /* PCM16 LE on the wire is the WAV sample order */
  fclose(f);
}

/* ---------------------------------------------------------------------------------------------
 * The device session */

typedef struct {
  ws_t ws;
  buf_t audio_out; /* PCM16 LE reply */
  buf_t text;      /* text or transcript deltas */
  int welcomed;
  char done_status[32];
  int out_rate;
#ifdef HAVE_OPUS
  OpusDecoder *dec;
#endif
} device_t;

static void on_frame(device_t *d, const uint8_t *msg, size_t n) {
  if (n < 5) return;
  uint32_t len = (uint32_t)msg[1] << 24 | (uint32_t)msg[2] << 16 | (uint32_t)msg[3] << 8 | msg[4];
  if (len != n - 5) {
    fprintf(stderr, "device_client: frame length mismatch (%u declared, %zu carried)\n", len, n - 5);
    return;
  }
  const uint8_t *p = msg + 5;
  if (msg[0] == F_AUDIO_OUT) {
#ifdef HAVE_OPUS
    if (d->dec) {
      opus_int16 pcm[5760];
      int got = opus_decode(d->dec, p, (opus_int32)len, pcm, 5760, 0);
      if (got < 0) fprintf(stderr, "device_client: opus_decode: %s\n", opus_strerror(got));
      for (int i = 0; i < got; i++) {
        uint8_t s[2] = {(uint8_t)pcm[i], (uint8_t)((uint16_t)pcm[i] >> 8)};
        buf_append(&d->audio_out, s, 2);
      }
      return;
    }
#endif
    buf_append(&d->audio_out, p, len);
    return;
  }
  char *json = malloc(len + 1);
  memcpy(json, p, len);
  json[len] = 0;
  if (msg[0] == F_WELCOME) {
    printf("welcome %s\n", json);
    d->welcomed = 1;
  } else if (msg[0] == F_ERROR) {
    char code[128] = "null", param[128] = "null", message[1024] = "";
    json_string(json, "code", code, sizeof code);
    json_string(json, "param", param, sizeof param);
    json_string(json, "message", message, sizeof message);
    printf("error %s %s %s\n", code, param, message);
  } else if (msg[0] == F_EVENT) {
    char type[128] = "";
    json_string(json, "type", type, sizeof type);
    printf("event %s\n", type);
    if (!strcmp(type, "response.output_text.delta") || !strcmp(type, "response.output_audio_transcript.delta")) {
      char delta[4096];
      if (json_string(json, "delta", delta, sizeof delta)) buf_append(&d->text, delta, strlen(delta));
    } else if (!strcmp(type, "response.done")) {
      json_string(json, "status", d->done_status, sizeof d->done_status);
    }
  }
  fflush(stdout);
  free(json);
}

/* Handles whatever arrives within `timeout_ms`; returns -1 once the link is gone. */
static int pump(device_t *d, int timeout_ms) {
  int r = ws_fill(&d->ws, timeout_ms);
  int op;
  while ((op = ws_parse(&d->ws)) > 0) {
    if (op == 2) on_frame(d, d->ws.message.data, d->ws.message.len);
  }
  if (d->ws.closed) return -1;
  return r;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static _Noreturn void usage(void) {
  fprintf(stderr,
          "usage: device_client -u ws://host:port/v1/device -i in.wav -o out.wav [options]\n"
          "  -k KEY            API key (Authorization header)\n"
          "  --key-in-hello    send the key in the hello instead of the header\n"
          "  -m MODEL          model (default: the gateway's first)\n"
          "  -r RATE           reply PCM16 rate: 8000, 16000, 24000 (default), 48000\n"
          "  --text            ask for a text reply (for models without speech)\n"
          "  --max-tokens N    max_output_tokens of the reply (default 24)\n"
          "  --instructions S  session instructions\n"
          "  --realtime        send the audio at real-time pace (default: as fast as possible)\n"
          "  --timeout S       seconds to wait for the reply (default 120)\n"
#ifdef HAVE_OPUS
          "  --opus            Opus in and out (48 kHz packets of 20 ms)\n"
#endif
  );
  exit(2);
}

int main(int argc, char **argv) {
  const char *url = NULL, *in_path = NULL, *out_path = NULL, *key = NULL, *model = NULL, *instructions = NULL;
  int key_in_hello = 0, text_only = 0, max_tokens = 24, realtime = 0, timeout_s = 120, out_rate = 24000, use_opus = 0;
  static struct option longopts[] = {{"key-in-hello", no_argument, 0, 'H'}, {"text", no_argument, 0, 'T'},         {"max-tokens", required_argument, 0, 'M'},
                                     {"instructions", required_argument, 0, 'I'}, {"realtime", no_argument, 0, 'R'}, {"timeout", required_argument, 0, 'W'},
                                     {"opus", no_argument, 0, 'O'},           {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "u:i:o:k:m:r:", longopts, NULL)) != -1) {
    switch (c) {
      case 'u': url = optarg; break;
      case 'i': in_path = optarg; break;
      case 'o': out_path = optarg; break;
      case 'k': key = optarg; break;
      case 'm': model = optarg; break;
      case 'r': out_rate = atoi(optarg); break;
      case 'H': key_in_hello = 1; break;
      case 'T': text_only = 1; break;
      case 'M': max_tokens = atoi(optarg); break;
      case 'I': instructions = optarg; break;
      case 'R': realtime = 1; break;
      case 'W': timeout_s = atoi(optarg); break;
      case 'O':
#ifdef HAVE_OPUS
        use_opus = 1;
        break;
#else
        die("built without Opus: rebuild with `make OPUS=1`");
#endif
      default: usage();
    }
  }
  if (!url || !in_path || !out_path) usage();

  /* ws://host[:port]/path */
  if (strncmp(url, "ws://", 5) != 0) die("only ws:// URLs are supported (put a TLS terminator in front for wss)");
  char host[256], port[16] = "80", path[1024] = "/v1/device";
  const char *h = url + 5, *slash = strchr(h, '/');
  size_t hl = slash ? (size_t)(slash - h) : strlen(h);
  if (hl >= sizeof host) die("host too long");
  memcpy(host, h, hl), host[hl] = 0;
  char *colon = strrchr(host, ':');
  if (colon) snprintf(port, sizeof port, "%s", colon + 1), *colon = 0;
  if (slash) snprintf(path, sizeof path, "%s", slash);

  pcm_t wav = read_wav(in_path);
  if (wav.rate != 8000 && wav.rate != 16000 && wav.rate != 24000 && wav.rate != 48000) die("WAV rate %d: use 8000, 16000, 24000 or 48000 Hz", wav.rate);

  device_t d = {0};
  d.out_rate = use_opus ? 48000 : out_rate;
  ws_connect(&d.ws, host, port, path, key_in_hello ? NULL : key);

  /* HELLO: protocol version, audio formats, and the key when the header cannot carry it. */
  char hello[1024];
  int n = snprintf(hello, sizeof hello, "{\"version\":1");
  if (model) n += snprintf(hello + n, sizeof hello - (size_t)n, ",\"model\":\"%s\"", model);
  if (key && key_in_hello) n += snprintf(hello + n, sizeof hello - (size_t)n, ",\"key\":\"%s\"", key);
#ifdef HAVE_OPUS
  OpusEncoder *enc = NULL;
  if (use_opus) {
    int err;
    if (wav.rate == 8000) die("Opus input needs a 16, 24 or 48 kHz WAV");
    enc = opus_encoder_create(wav.rate, 1, OPUS_APPLICATION_VOIP, &err);
    if (err != OPUS_OK) die("opus_encoder_create: %s", opus_strerror(err));
    d.dec = opus_decoder_create(48000, 1, &err);
    if (err != OPUS_OK) die("opus_decoder_create: %s", opus_strerror(err));
    n += snprintf(hello + n, sizeof hello - (size_t)n, ",\"audio_in\":{\"codec\":\"opus\",\"rate\":%d},\"audio_out\":{\"codec\":\"opus\",\"rate\":48000,\"frame_ms\":20}", wav.rate);
  } else
#endif
    n += snprintf(hello + n, sizeof hello - (size_t)n, ",\"audio_in\":{\"codec\":\"pcm16\",\"rate\":%d},\"audio_out\":{\"codec\":\"pcm16\",\"rate\":%d}", wav.rate, out_rate);
  snprintf(hello + n, sizeof hello - (size_t)n, "}");
  device_send_json(&d.ws, F_HELLO, hello);

  double deadline = now_ms() + timeout_s * 1000.0;
  while (!d.welcomed) {
    if (pump(&d, 100) < 0 || now_ms() > deadline) die("no welcome from the gateway");
  }

  /* Manual turn mode: no server VAD; the client commits and asks for the reply. */
  char update[4096];
  n = snprintf(update, sizeof update, "{\"type\":\"session.update\",\"session\":{\"type\":\"realtime\",\"output_modalities\":[\"%s\"],\"audio\":{\"input\":{\"turn_detection\":null}}",
               text_only ? "text" : "audio");
  if (instructions) {
    n += snprintf(update + n, sizeof update - (size_t)n, ",\"instructions\":\"");
    for (const char *s = instructions; *s && n < (int)sizeof update - 8; s++) {
      if (*s == '"' || *s == '\\') update[n++] = '\\';
      update[n++] = *s;
    }
    n += snprintf(update + n, sizeof update - (size_t)n, "\"");
  }
  snprintf(update + n, sizeof update - (size_t)n, "}}");
  device_send_json(&d.ws, F_EVENT, update);

  /* Mic audio in 20 ms frames, raw bytes: never base64. */
  size_t frame = (size_t)wav.rate / 50;
  double t0 = now_ms();
  for (size_t at = 0, i = 0; at < wav.count; at += frame, i++) {
    size_t count = wav.count - at < frame ? wav.count - at : frame;
#ifdef HAVE_OPUS
    if (enc) {
      opus_int16 block[960] = {0};
      memcpy(block, wav.samples + at, count * 2); /* the last frame is padded with silence */
      uint8_t packet[1500];
      int bytes = opus_encode(enc, block, (int)frame, packet, sizeof packet);
      if (bytes < 0) die("opus_encode: %s", opus_strerror(bytes));
      device_send(&d.ws, F_AUDIO_IN, packet, (size_t)bytes);
    } else
#endif
    {
      uint8_t le[1920];
      for (size_t k = 0; k < count; k++) le[2 * k] = (uint8_t)wav.samples[at + k], le[2 * k + 1] = (uint8_t)((uint16_t)wav.samples[at + k] >> 8);
      device_send(&d.ws, F_AUDIO_IN, le, count * 2);
    }
    int wait = realtime ? (int)(t0 + (double)(i + 1) * 20 - now_ms()) : 0;
    if (pump(&d, wait > 0 ? wait : 0) < 0) die("the link closed while streaming");
  }
  device_send_json(&d.ws, F_EVENT, "{\"type\":\"input_audio_buffer.commit\"}");
  char create[256];
  snprintf(create, sizeof create, "{\"type\":\"response.create\",\"response\":{\"max_output_tokens\":%d}}", max_tokens);
  device_send_json(&d.ws, F_EVENT, create);

  while (!d.done_status[0]) {
    if (pump(&d, 200) < 0) break;
    if (now_ms() > deadline) {
      fprintf(stderr, "device_client: no response.done within %d s\n", timeout_s);
      break;
    }
  }
  /* Say goodbye: close 1000 and wait briefly for the gateway's close. */
  if (!d.ws.closed) {
    uint8_t bye[2] = {0x03, 0xE8};
    ws_send(&d.ws, 0x8, bye, 2);
    double until = now_ms() + 2000;
    while (!d.ws.closed && now_ms() < until && pump(&d, 100) >= 0) {
    }
  }
  close(d.ws.fd);

  write_wav(out_path, d.audio_out.data, d.audio_out.len, d.out_rate);
  buf_append(&d.text, "", 1);
  printf("text %s\n", (char *)d.text.data);
  printf("done %s\n", d.done_status[0] ? d.done_status : "none");
  printf("audio %zu %d\n", d.audio_out.len / 2, d.out_rate);
  return !strcmp(d.done_status, "completed") || !strcmp(d.done_status, "incomplete") ? 0 : 1;
}
