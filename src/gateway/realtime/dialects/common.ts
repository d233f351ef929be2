// Validation vocabulary shared by the dialect parsers: the exact error codes of the realtime
// protocol (realtime-protocol.md §6.2) and a reader that walks one JSON object with a dotted
// `param` path, so every error names the offending field the way OpenAI does
// (`session.audio.input.format.rate`, `item.content[0].audio`).
import { Type } from 'typebox';
import { Compile } from 'typebox/compile';
import { ProtocolError } from '../model.js';

// ---------------------------------------------------------------------------------------------
// Errors (codes and messages in OpenAI's style; clients display them verbatim)

export function describeJsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'boolean') return 'a boolean';
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

/** Python-style rendering of a value, as OpenAI/DashScope messages quote them: 'x', ['a', 'b']. */
export function quote(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (Array.isArray(value)) return `[${value.map(quote).join(', ')}]`;
  return JSON.stringify(value) ?? String(value);
}

export const errors = {
  invalidJson(): ProtocolError {
    return new ProtocolError('invalid_json', 'Invalid event: expected a JSON object with a string "type".', null);
  },
  missingRequired(param: string): ProtocolError {
    return new ProtocolError('missing_required_parameter', `Missing required parameter: '${param}'.`, param);
  },
  unknownParameter(param: string): ProtocolError {
    return new ProtocolError('unknown_parameter', `Unknown parameter: '${param}'.`, param);
  },
  invalidType(param: string, expected: string, value: unknown): ProtocolError {
    return new ProtocolError(
      'invalid_type',
      `Invalid type for '${param}': expected ${expected}, but got ${describeJsonType(value)} instead.`,
      param,
    );
  },
  invalidValue(param: string, message: string): ProtocolError {
    return new ProtocolError('invalid_value', message, param);
  },
  /** Unknown enum member; the message lists what is supported. */
  notOneOf(param: string, value: unknown, supported: readonly unknown[]): ProtocolError {
    return new ProtocolError(
      'invalid_value',
      `Invalid value: ${quote(value)}. Supported values are: ${supported.map(quote).join(', ')}.`,
      param,
    );
  },
  belowMin(param: string, min: number, value: number, integer: boolean): ProtocolError {
    const kind = integer ? 'integer' : 'decimal';
    return new ProtocolError(
      `${kind}_below_min_value`,
      `Invalid '${param}': ${kind} below minimum value. Expected a value >= ${min}, but got ${value} instead.`,
      param,
    );
  },
  aboveMax(param: string, max: number, value: number, integer: boolean): ProtocolError {
    const kind = integer ? 'integer' : 'decimal';
    return new ProtocolError(
      `${kind}_above_max_value`,
      `Invalid '${param}': ${kind} above maximum value. Expected a value <= ${max}, but got ${value} instead.`,
      param,
    );
  },
  tooLong(param: string, maxBytes: number, bytes: number): ProtocolError {
    return new ProtocolError(
      'string_above_max_length',
      `Invalid '${param}': decoded data too large. Expected at most ${maxBytes} bytes, but got ${bytes} bytes instead.`,
      param,
    );
  },
};

// ---------------------------------------------------------------------------------------------
// Field reader

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export interface NumberRange {
  integer?: boolean;
  min?: number;
  max?: number;
  /** Exclusive bounds (DashScope temperature [0,2), top_p (0,1]). */
  above?: number;
  below?: number;
}

/**
 * One JSON object under validation. Unknown keys are rejected up front (the allowed list is the
 * object's schema), so each getter only deals with its own value.
 */
export class Fields {
  private constructor(
    readonly value: Record<string, unknown>,
    readonly path: string,
  ) {}

  /** `value` must be an object with only `allowed` keys. `path` '' is the event itself. */
  static of(value: unknown, path: string, allowed: readonly string[]): Fields {
    if (!isJsonObject(value)) throw errors.invalidType(path, 'an object', value);
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) throw errors.unknownParameter(path ? `${path}.${key}` : key);
    }
    return new Fields(value, path);
  }

  param(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  has(key: string): boolean {
    return this.value[key] !== undefined;
  }

  raw(key: string): unknown {
    return this.value[key];
  }

  required(key: string): unknown {
    const value = this.value[key];
    if (value === undefined) throw errors.missingRequired(this.param(key));
    return value;
  }

  string(key: string): string | undefined {
    const value = this.value[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw errors.invalidType(this.param(key), 'a string', value);
    return value;
  }

  requiredString(key: string): string {
    const value = this.required(key);
    if (typeof value !== 'string') throw errors.invalidType(this.param(key), 'a string', value);
    return value;
  }

  /** A string or null (absent: undefined). */
  nullableString(key: string): string | null | undefined {
    return this.value[key] === null ? null : this.string(key);
  }

  boolean(key: string): boolean | undefined {
    const value = this.value[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') throw errors.invalidType(this.param(key), 'a boolean', value);
    return value;
  }

  number(key: string, range: NumberRange = {}): number | undefined {
    const value = this.value[key];
    if (value === undefined) return undefined;
    return checkNumber(this.param(key), value, range);
  }

  nullableNumber(key: string, range: NumberRange = {}): number | null | undefined {
    return this.value[key] === null ? null : this.number(key, range);
  }

  oneOf<T extends string>(key: string, supported: readonly T[]): T | undefined {
    const value = this.value[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw errors.invalidType(this.param(key), 'a string', value);
    if (!(supported as readonly string[]).includes(value)) throw errors.notOneOf(this.param(key), value, supported);
    return value as T;
  }

  requiredOneOf<T extends string>(key: string, supported: readonly T[]): T {
    this.required(key);
    return this.oneOf(key, supported)!;
  }

  object(key: string, allowed: readonly string[]): Fields | undefined {
    const value = this.value[key];
    if (value === undefined) return undefined;
    return Fields.of(value, this.param(key), allowed);
  }

  nullableObject(key: string, allowed: readonly string[]): Fields | null | undefined {
    return this.value[key] === null ? null : this.object(key, allowed);
  }

  array(key: string): unknown[] | undefined {
    const value = this.value[key];
    if (value === undefined) return undefined;
    if (!Array.isArray(value)) throw errors.invalidType(this.param(key), 'an array', value);
    return value as unknown[];
  }

  /** The present keys among `keys`, copied as they are (accepted and echoed, no effect). */
  pick(keys: readonly string[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const key of keys) if (this.value[key] !== undefined) out[key] = this.value[key];
    return out;
  }
}

/** The `type` of an object whose other keys depend on it (checked once the type is known). */
export function discriminator<T extends string>(value: Record<string, unknown>, path: string, supported: readonly T[]): T {
  const param = path ? `${path}.type` : 'type';
  const type = value.type;
  if (type === undefined) throw errors.missingRequired(param);
  if (typeof type !== 'string') throw errors.invalidType(param, 'a string', type);
  if (!(supported as readonly string[]).includes(type)) throw errors.notOneOf(param, type, supported);
  return type as T;
}

export function checkNumber(param: string, value: unknown, range: NumberRange): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw errors.invalidType(param, range.integer ? 'an integer' : 'a number', value);
  }
  if (range.integer && !Number.isInteger(value)) throw errors.invalidType(param, 'an integer', value);
  const integer = range.integer === true;
  if (range.min !== undefined && value < range.min) throw errors.belowMin(param, range.min, value, integer);
  if (range.above !== undefined && value <= range.above) {
    throw errors.invalidValue(param, `Invalid '${param}': expected a value > ${range.above}, but got ${value} instead.`);
  }
  if (range.max !== undefined && value > range.max) throw errors.aboveMax(param, range.max, value, integer);
  if (range.below !== undefined && value >= range.below) {
    throw errors.invalidValue(param, `Invalid '${param}': expected a value < ${range.below}, but got ${value} instead.`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Small schemas where a shape check is all that is needed

const metadataSchema = Compile(
  Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 512 }), { maxProperties: 16 }),
);
const jsonSchemaObject = Compile(Type.Record(Type.String(), Type.Unknown()));

/** `metadata`: up to 16 string pairs (keys ≤ 64 chars, values ≤ 512), or null. */
export function parseMetadata(fields: Fields, key: string): Record<string, string> | null | undefined {
  const value = fields.raw(key);
  if (value === undefined || value === null) return value;
  if (!metadataSchema.Check(value)) {
    throw errors.invalidValue(
      fields.param(key),
      `Invalid '${fields.param(key)}': expected at most 16 string key/value pairs (keys up to 64 characters, values up to 512).`,
    );
  }
  return value;
}

/** A tool's `parameters`: any JSON object (a JSON Schema; not checked further). */
export function isJsonSchemaObject(value: unknown): value is Record<string, unknown> {
  return !Array.isArray(value) && jsonSchemaObject.Check(value);
}
