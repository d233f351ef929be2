// transformers' `tojson` chat-template filter in TypeScript: Python `json.dumps(x, ensure_ascii=False)`
// with the default separators `", "` and `": "`, key order as given, non-ASCII text as-is (only `"`,
// `\` and control characters below U+0020 are escaped, the same escapes JSON.stringify writes).
//
// Numbers: Python keeps the int/float type of the JSON text it parsed, JavaScript does not. A safe
// integer is written as a Python int (`3`), any other number as Python's float repr (`2.5`, `1e-07`,
// `1e+16`, `123456789012345.6`), so values match what Python has after json.loads of the same
// request except integer-valued floats written with a fraction or exponent in the source JSON
// (`1.0`, `5e3`), which JSON.parse has already turned into integers. A bigint is written as an int.
// Objects keep their key order, except that JavaScript puts integer-like keys ("2") first.
import { FusionError, type FusionErrorCode } from './errors.js';

export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** Nesting beyond this is refused (Python's recursion limit fails a little under 1000 levels). */
export const MAX_JSON_DEPTH = 512;

/** Python repr of a float (the shortest round-tripping digits, as JavaScript also finds them). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, exponent] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const decpt = Number(exponent) + 1; // digits are 0.d1d2... * 10^decpt
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`;
    if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`;
    return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  }
  const e = decpt - 1;
  const frac = digits.length > 1 ? `.${digits.slice(1)}` : '';
  return `${sign}${digits[0] as string}${frac}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

const IDENT = /^[A-Za-z_$][\w$]*$/;
const childPath = (path: string, key: string): string =>
  IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;

/**
 * `value | tojson` as transformers renders it. Throws FusionError(code) naming the offending field
 * (`param` plus the path inside the value) for anything that is not JSON data: undefined in an
 * array, functions, symbols, class instances, cycles, nesting deeper than MAX_JSON_DEPTH.
 * Undefined object properties are left out, as JSON.stringify does.
 */
export function pyJsonDumps(value: unknown, code: FusionErrorCode, param: string): string {
  const open = new Set<object>();
  const dump = (v: unknown, path: string, depth: number): string => {
    switch (typeof v) {
      case 'string':
        return JSON.stringify(v);
      case 'boolean':
        return v ? 'true' : 'false';
      case 'number':
        return Number.isSafeInteger(v) ? String(v) : pyFloatRepr(v);
      case 'bigint':
        return v.toString();
      case 'object': {
        if (v === null) return 'null';
        if (depth >= MAX_JSON_DEPTH) throw new FusionError(code, `nested deeper than ${MAX_JSON_DEPTH} levels`, path);
        if (open.has(v)) throw new FusionError(code, 'circular reference', path);
        open.add(v);
        let out: string;
        if (Array.isArray(v)) {
          const items: string[] = [];
          for (let i = 0; i < v.length; i++) {
            const item: unknown = v[i];
            if (item === undefined) throw new FusionError(code, 'undefined is not a JSON value', `${path}[${i}]`);
            items.push(dump(item, `${path}[${i}]`, depth + 1));
          }
          out = `[${items.join(', ')}]`;
        } else if (isPlainObject(v)) {
          const entries: string[] = [];
          for (const [k, item] of Object.entries(v)) {
            if (item === undefined) continue;
            entries.push(`${JSON.stringify(k)}: ${dump(item, childPath(path, k), depth + 1)}`);
          }
          out = `{${entries.join(', ')}}`;
        } else {
          throw new FusionError(code, 'not JSON data (only plain objects and arrays)', path);
        }
        open.delete(v);
        return out;
      }
      default:
        throw new FusionError(code, `${typeof v} is not a JSON value`, path);
    }
  };
  return dump(value, param, 0);
}
