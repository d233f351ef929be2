// A small, strict `multipart/form-data` reader (RFC 7578) for the calls endpoint's two fields,
// `sdp` and `session`. Parts are separated by CRLF `--boundary`; each has header lines, a blank
// line, then its bytes. Browsers send plain fields (no filename, no Content-Type); the openai SDK
// sends each field as a filename-less file with its Content-Type. Only what is needed is read:
// field name, content type and bytes; anything malformed is a MultipartError.

export interface FormPart {
  name: string;
  filename: string | undefined;
  contentType: string | undefined;
  data: Buffer;
}

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

/** The boundary of a `multipart/form-data` Content-Type header (quoted or not). */
export function multipartBoundary(contentType: string): string {
  const [type, ...params] = splitParams(contentType);
  if (type?.trim().toLowerCase() !== 'multipart/form-data') throw new MultipartError('not a multipart/form-data body');
  for (const p of params) {
    const eq = p.indexOf('=');
    if (eq < 0 || p.slice(0, eq).trim().toLowerCase() !== 'boundary') continue;
    let value = p.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    if (value.length < 1 || value.length > 70) throw new MultipartError('the multipart boundary must be 1 to 70 characters');
    return value;
  }
  throw new MultipartError('the multipart Content-Type has no boundary');
}

/** Splits a body into its parts. At most `maxParts` parts. */
export function parseMultipart(body: Buffer, contentType: string, maxParts = 16): FormPart[] {
  const boundary = multipartBoundary(contentType);
  const delimiter = Buffer.from(`--${boundary}`, 'latin1');
  // The first delimiter may start the body (preamble allowed before it); later ones follow a CRLF.
  let at = body.indexOf(delimiter);
  if (at < 0) throw new MultipartError('the multipart body has no boundary line');
  const parts: FormPart[] = [];
  const next = Buffer.from(`\r\n--${boundary}`, 'latin1');
  for (;;) {
    at += delimiter.length;
    // "--" after the delimiter closes the body.
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return parts;
    // Transport padding (spaces/tabs) then CRLF.
    while (body[at] === 0x20 || body[at] === 0x09) at++;
    if (body[at] !== 0x0d || body[at + 1] !== 0x0a) throw new MultipartError('a multipart boundary line must end with CRLF');
    at += 2;
    const headerEnd = body.indexOf('\r\n\r\n', at, 'latin1');
    const end = body.indexOf(next, at);
    if (end < 0) throw new MultipartError('the multipart body is not closed by its final boundary');
    let headers: string;
    let dataStart: number;
    if (body[at] === 0x0d && body[at + 1] === 0x0a) {
      // No header lines at all.
      headers = '';
      dataStart = at + 2;
    } else {
      if (headerEnd < 0 || headerEnd > end) throw new MultipartError('a multipart part has no blank line after its headers');
      headers = body.toString('utf8', at, headerEnd);
      dataStart = headerEnd + 4;
    }
    parts.push(parsePart(headers, body.subarray(dataStart, end)));
    if (parts.length > maxParts) throw new MultipartError(`more than ${maxParts} multipart parts`);
    at = end + 2;
  }
}

function parsePart(headerText: string, data: Buffer): FormPart {
  let disposition: string | undefined;
  let contentType: string | undefined;
  for (const line of headerText.split('\r\n')) {
    if (line.length === 0) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MultipartError(`malformed multipart header line ${JSON.stringify(line.slice(0, 60))}`);
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === 'content-disposition') disposition = value;
    else if (key === 'content-type') contentType = value;
  }
  if (!disposition) throw new MultipartError('a multipart part has no Content-Disposition');
  const [kind, ...params] = splitParams(disposition);
  if (kind?.toLowerCase() !== 'form-data') throw new MultipartError('a multipart part must be form-data');
  let name: string | undefined;
  let filename: string | undefined;
  for (const p of params) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const key = p.slice(0, eq).trim().toLowerCase();
    let value = p.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    if (key === 'name') name = value;
    else if (key === 'filename') filename = value;
  }
  if (name === undefined) throw new MultipartError('a multipart part has no name');
  return { name, filename, contentType, data };
}

/** `a; b="x;y"; c=z` -> ['a', 'b="x;y"', 'c=z'], honouring quotes. */
function splitParams(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (ch === '\\' && quoted && i + 1 < value.length) {
      cur += ch + value[++i]!;
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === ';' && !quoted) {
      out.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur.trim());
  return out;
}
