// clipwire-client 0.1.0 for the Clipwire demo, bundled with @msgpack/msgpack by scripts/build-demo-client (sources aaa7c46893a9ca26): do not edit by hand.
var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// node_modules/@msgpack/msgpack/dist.esm/utils/utf8.mjs
function utf8Count(str) {
  const strLength = str.length;
  let byteLength = 0;
  let pos = 0;
  while (pos < strLength) {
    let value = str.charCodeAt(pos++);
    if ((value & 4294967168) === 0) {
      byteLength++;
      continue;
    } else if ((value & 4294965248) === 0) {
      byteLength += 2;
    } else {
      if (value >= 55296 && value <= 56319) {
        if (pos < strLength) {
          const extra = str.charCodeAt(pos);
          if ((extra & 64512) === 56320) {
            ++pos;
            value = ((value & 1023) << 10) + (extra & 1023) + 65536;
          }
        }
      }
      if ((value & 4294901760) === 0) {
        byteLength += 3;
      } else {
        byteLength += 4;
      }
    }
  }
  return byteLength;
}
function utf8EncodeJs(str, output, outputOffset) {
  const strLength = str.length;
  let offset = outputOffset;
  let pos = 0;
  while (pos < strLength) {
    let value = str.charCodeAt(pos++);
    if ((value & 4294967168) === 0) {
      output[offset++] = value;
      continue;
    } else if ((value & 4294965248) === 0) {
      output[offset++] = value >> 6 & 31 | 192;
    } else {
      if (value >= 55296 && value <= 56319) {
        if (pos < strLength) {
          const extra = str.charCodeAt(pos);
          if ((extra & 64512) === 56320) {
            ++pos;
            value = ((value & 1023) << 10) + (extra & 1023) + 65536;
          }
        }
      }
      if ((value & 4294901760) === 0) {
        output[offset++] = value >> 12 & 15 | 224;
        output[offset++] = value >> 6 & 63 | 128;
      } else {
        output[offset++] = value >> 18 & 7 | 240;
        output[offset++] = value >> 12 & 63 | 128;
        output[offset++] = value >> 6 & 63 | 128;
      }
    }
    output[offset++] = value & 63 | 128;
  }
}
var sharedTextEncoder = new TextEncoder();
var TEXT_ENCODER_THRESHOLD = 50;
function utf8EncodeTE(str, output, outputOffset) {
  sharedTextEncoder.encodeInto(str, output.subarray(outputOffset));
}
function utf8Encode(str, output, outputOffset) {
  if (str.length > TEXT_ENCODER_THRESHOLD) {
    utf8EncodeTE(str, output, outputOffset);
  } else {
    utf8EncodeJs(str, output, outputOffset);
  }
}
var sharedTextDecoder = new TextDecoder();

// node_modules/@msgpack/msgpack/dist.esm/ExtData.mjs
var ExtData = class {
  constructor(type, data) {
    __publicField(this, "type");
    __publicField(this, "data");
    this.type = type;
    this.data = data;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/DecodeError.mjs
var DecodeError = class _DecodeError extends Error {
  constructor(message) {
    super(message);
    const proto = Object.create(_DecodeError.prototype);
    Object.setPrototypeOf(this, proto);
    Object.defineProperty(this, "name", {
      configurable: true,
      enumerable: false,
      value: _DecodeError.name
    });
  }
};

// node_modules/@msgpack/msgpack/dist.esm/utils/int.mjs
function setUint64(view, offset, value) {
  const high = value / 4294967296;
  const low = value;
  view.setUint32(offset, high);
  view.setUint32(offset + 4, low);
}
function setInt64(view, offset, value) {
  const high = Math.floor(value / 4294967296);
  const low = value;
  view.setUint32(offset, high);
  view.setUint32(offset + 4, low);
}
function getInt64(view, offset) {
  const high = view.getInt32(offset);
  const low = view.getUint32(offset + 4);
  return high * 4294967296 + low;
}

// node_modules/@msgpack/msgpack/dist.esm/timestamp.mjs
var EXT_TIMESTAMP = -1;
var TIMESTAMP32_MAX_SEC = 4294967296 - 1;
var TIMESTAMP64_MAX_SEC = 17179869184 - 1;
function encodeTimeSpecToTimestamp({ sec, nsec }) {
  if (sec >= 0 && nsec >= 0 && sec <= TIMESTAMP64_MAX_SEC) {
    if (nsec === 0 && sec <= TIMESTAMP32_MAX_SEC) {
      const rv = new Uint8Array(4);
      const view = new DataView(rv.buffer);
      view.setUint32(0, sec);
      return rv;
    } else {
      const secHigh = sec / 4294967296;
      const secLow = sec & 4294967295;
      const rv = new Uint8Array(8);
      const view = new DataView(rv.buffer);
      view.setUint32(0, nsec << 2 | secHigh & 3);
      view.setUint32(4, secLow);
      return rv;
    }
  } else {
    const rv = new Uint8Array(12);
    const view = new DataView(rv.buffer);
    view.setUint32(0, nsec);
    setInt64(view, 4, sec);
    return rv;
  }
}
function encodeDateToTimeSpec(date) {
  const msec = date.getTime();
  const sec = Math.floor(msec / 1e3);
  const nsec = (msec - sec * 1e3) * 1e6;
  const nsecInSec = Math.floor(nsec / 1e9);
  return {
    sec: sec + nsecInSec,
    nsec: nsec - nsecInSec * 1e9
  };
}
function encodeTimestampExtension(object) {
  if (object instanceof Date) {
    const timeSpec = encodeDateToTimeSpec(object);
    return encodeTimeSpecToTimestamp(timeSpec);
  } else {
    return null;
  }
}
function decodeTimestampToTimeSpec(data) {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (data.byteLength) {
    case 4: {
      const sec = view.getUint32(0);
      const nsec = 0;
      return { sec, nsec };
    }
    case 8: {
      const nsec30AndSecHigh2 = view.getUint32(0);
      const secLow32 = view.getUint32(4);
      const sec = (nsec30AndSecHigh2 & 3) * 4294967296 + secLow32;
      const nsec = nsec30AndSecHigh2 >>> 2;
      return { sec, nsec };
    }
    case 12: {
      const sec = getInt64(view, 4);
      const nsec = view.getUint32(0);
      return { sec, nsec };
    }
    default:
      throw new DecodeError(`Unrecognized data size for timestamp (expected 4, 8, or 12): ${data.length}`);
  }
}
function decodeTimestampExtension(data) {
  const timeSpec = decodeTimestampToTimeSpec(data);
  return new Date(timeSpec.sec * 1e3 + timeSpec.nsec / 1e6);
}
var timestampExtension = {
  type: EXT_TIMESTAMP,
  encode: encodeTimestampExtension,
  decode: decodeTimestampExtension
};

// node_modules/@msgpack/msgpack/dist.esm/ExtensionCodec.mjs
var _ExtensionCodec = class _ExtensionCodec {
  constructor() {
    // ensures ExtensionCodecType<X> matches ExtensionCodec<X>
    // this will make type errors a lot more clear
    // eslint-disable-next-line @typescript-eslint/naming-convention
    __publicField(this, "__brand");
    // built-in extensions
    __publicField(this, "builtInEncoders", []);
    __publicField(this, "builtInDecoders", []);
    // custom extensions
    __publicField(this, "encoders", []);
    __publicField(this, "decoders", []);
    this.register(timestampExtension);
  }
  register({ type, encode, decode }) {
    if (type >= 0) {
      this.encoders[type] = encode;
      this.decoders[type] = decode;
    } else {
      const index = -1 - type;
      this.builtInEncoders[index] = encode;
      this.builtInDecoders[index] = decode;
    }
  }
  tryToEncode(object, context) {
    for (let i = 0; i < this.builtInEncoders.length; i++) {
      const encodeExt = this.builtInEncoders[i];
      if (encodeExt != null) {
        const data = encodeExt(object, context);
        if (data != null) {
          const type = -1 - i;
          return new ExtData(type, data);
        }
      }
    }
    for (let i = 0; i < this.encoders.length; i++) {
      const encodeExt = this.encoders[i];
      if (encodeExt != null) {
        const data = encodeExt(object, context);
        if (data != null) {
          const type = i;
          return new ExtData(type, data);
        }
      }
    }
    if (object instanceof ExtData) {
      return object;
    }
    return null;
  }
  decode(data, type, context) {
    const decodeExt = type < 0 ? this.builtInDecoders[-1 - type] : this.decoders[type];
    if (decodeExt) {
      return decodeExt(data, type, context);
    } else {
      return new ExtData(type, data);
    }
  }
};
__publicField(_ExtensionCodec, "defaultCodec", new _ExtensionCodec());
var ExtensionCodec = _ExtensionCodec;

// node_modules/@msgpack/msgpack/dist.esm/utils/typedArrays.mjs
function isArrayBufferLike(buffer) {
  return buffer instanceof ArrayBuffer || typeof SharedArrayBuffer !== "undefined" && buffer instanceof SharedArrayBuffer;
}
function ensureUint8Array(buffer) {
  if (buffer instanceof Uint8Array) {
    return buffer;
  } else if (ArrayBuffer.isView(buffer)) {
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } else if (isArrayBufferLike(buffer)) {
    return new Uint8Array(buffer);
  } else {
    return Uint8Array.from(buffer);
  }
}

// node_modules/@msgpack/msgpack/dist.esm/Encoder.mjs
var DEFAULT_MAX_DEPTH = 100;
var DEFAULT_INITIAL_BUFFER_SIZE = 2048;
var Encoder = class _Encoder {
  constructor(options) {
    __publicField(this, "extensionCodec");
    __publicField(this, "context");
    __publicField(this, "useBigInt64");
    __publicField(this, "maxDepth");
    __publicField(this, "initialBufferSize");
    __publicField(this, "sortKeys");
    __publicField(this, "forceFloat32");
    __publicField(this, "ignoreUndefined");
    __publicField(this, "forceIntegerToFloat");
    __publicField(this, "pos");
    __publicField(this, "view");
    __publicField(this, "bytes");
    __publicField(this, "entered", false);
    this.extensionCodec = options?.extensionCodec ?? ExtensionCodec.defaultCodec;
    this.context = options?.context;
    this.useBigInt64 = options?.useBigInt64 ?? false;
    this.maxDepth = options?.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.initialBufferSize = options?.initialBufferSize ?? DEFAULT_INITIAL_BUFFER_SIZE;
    this.sortKeys = options?.sortKeys ?? false;
    this.forceFloat32 = options?.forceFloat32 ?? false;
    this.ignoreUndefined = options?.ignoreUndefined ?? false;
    this.forceIntegerToFloat = options?.forceIntegerToFloat ?? false;
    this.pos = 0;
    this.view = new DataView(new ArrayBuffer(this.initialBufferSize));
    this.bytes = new Uint8Array(this.view.buffer);
  }
  clone() {
    return new _Encoder({
      extensionCodec: this.extensionCodec,
      context: this.context,
      useBigInt64: this.useBigInt64,
      maxDepth: this.maxDepth,
      initialBufferSize: this.initialBufferSize,
      sortKeys: this.sortKeys,
      forceFloat32: this.forceFloat32,
      ignoreUndefined: this.ignoreUndefined,
      forceIntegerToFloat: this.forceIntegerToFloat
    });
  }
  reinitializeState() {
    this.pos = 0;
  }
  /**
   * This is almost equivalent to {@link Encoder#encode}, but it returns an reference of the encoder's internal buffer and thus much faster than {@link Encoder#encode}.
   *
   * @returns Encodes the object and returns a shared reference the encoder's internal buffer.
   */
  encodeSharedRef(object) {
    if (this.entered) {
      const instance = this.clone();
      return instance.encodeSharedRef(object);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.doEncode(object, 1);
      return this.bytes.subarray(0, this.pos);
    } finally {
      this.entered = false;
    }
  }
  /**
   * @returns Encodes the object and returns a copy of the encoder's internal buffer.
   */
  encode(object) {
    if (this.entered) {
      const instance = this.clone();
      return instance.encode(object);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.doEncode(object, 1);
      return this.bytes.slice(0, this.pos);
    } finally {
      this.entered = false;
    }
  }
  doEncode(object, depth) {
    if (depth > this.maxDepth) {
      throw new Error(`Too deep objects in depth ${depth}`);
    }
    if (object == null) {
      this.encodeNil();
    } else if (typeof object === "boolean") {
      this.encodeBoolean(object);
    } else if (typeof object === "number") {
      if (!this.forceIntegerToFloat) {
        this.encodeNumber(object);
      } else {
        this.encodeNumberAsFloat(object);
      }
    } else if (typeof object === "string") {
      this.encodeString(object);
    } else if (this.useBigInt64 && typeof object === "bigint") {
      this.encodeBigInt64(object);
    } else {
      this.encodeObject(object, depth);
    }
  }
  ensureBufferSizeToWrite(sizeToWrite) {
    const requiredSize = this.pos + sizeToWrite;
    if (this.view.byteLength < requiredSize) {
      this.resizeBuffer(requiredSize * 2);
    }
  }
  resizeBuffer(newSize) {
    const newBuffer = new ArrayBuffer(newSize);
    const newBytes = new Uint8Array(newBuffer);
    const newView = new DataView(newBuffer);
    newBytes.set(this.bytes);
    this.view = newView;
    this.bytes = newBytes;
  }
  encodeNil() {
    this.writeU8(192);
  }
  encodeBoolean(object) {
    if (object === false) {
      this.writeU8(194);
    } else {
      this.writeU8(195);
    }
  }
  encodeNumber(object) {
    if (!this.forceIntegerToFloat && Number.isSafeInteger(object)) {
      if (object >= 0) {
        if (object < 128) {
          this.writeU8(object);
        } else if (object < 256) {
          this.writeU8(204);
          this.writeU8(object);
        } else if (object < 65536) {
          this.writeU8(205);
          this.writeU16(object);
        } else if (object < 4294967296) {
          this.writeU8(206);
          this.writeU32(object);
        } else if (!this.useBigInt64) {
          this.writeU8(207);
          this.writeU64(object);
        } else {
          this.encodeNumberAsFloat(object);
        }
      } else {
        if (object >= -32) {
          this.writeU8(224 | object + 32);
        } else if (object >= -128) {
          this.writeU8(208);
          this.writeI8(object);
        } else if (object >= -32768) {
          this.writeU8(209);
          this.writeI16(object);
        } else if (object >= -2147483648) {
          this.writeU8(210);
          this.writeI32(object);
        } else if (!this.useBigInt64) {
          this.writeU8(211);
          this.writeI64(object);
        } else {
          this.encodeNumberAsFloat(object);
        }
      }
    } else {
      this.encodeNumberAsFloat(object);
    }
  }
  encodeNumberAsFloat(object) {
    if (this.forceFloat32) {
      this.writeU8(202);
      this.writeF32(object);
    } else {
      this.writeU8(203);
      this.writeF64(object);
    }
  }
  encodeBigInt64(object) {
    if (object >= BigInt(0)) {
      this.writeU8(207);
      this.writeBigUint64(object);
    } else {
      this.writeU8(211);
      this.writeBigInt64(object);
    }
  }
  writeStringHeader(byteLength) {
    if (byteLength < 32) {
      this.writeU8(160 + byteLength);
    } else if (byteLength < 256) {
      this.writeU8(217);
      this.writeU8(byteLength);
    } else if (byteLength < 65536) {
      this.writeU8(218);
      this.writeU16(byteLength);
    } else if (byteLength < 4294967296) {
      this.writeU8(219);
      this.writeU32(byteLength);
    } else {
      throw new Error(`Too long string: ${byteLength} bytes in UTF-8`);
    }
  }
  encodeString(object) {
    const maxHeaderSize = 1 + 4;
    const byteLength = utf8Count(object);
    this.ensureBufferSizeToWrite(maxHeaderSize + byteLength);
    this.writeStringHeader(byteLength);
    utf8Encode(object, this.bytes, this.pos);
    this.pos += byteLength;
  }
  encodeObject(object, depth) {
    const ext = this.extensionCodec.tryToEncode(object, this.context);
    if (ext != null) {
      this.encodeExtension(ext);
    } else if (Array.isArray(object)) {
      this.encodeArray(object, depth);
    } else if (ArrayBuffer.isView(object)) {
      this.encodeBinary(object);
    } else if (typeof object === "object") {
      this.encodeMap(object, depth);
    } else {
      throw new Error(`Unrecognized object: ${Object.prototype.toString.apply(object)}`);
    }
  }
  encodeBinary(object) {
    const size = object.byteLength;
    if (size < 256) {
      this.writeU8(196);
      this.writeU8(size);
    } else if (size < 65536) {
      this.writeU8(197);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(198);
      this.writeU32(size);
    } else {
      throw new Error(`Too large binary: ${size}`);
    }
    const bytes = ensureUint8Array(object);
    this.writeU8a(bytes);
  }
  encodeArray(object, depth) {
    const size = object.length;
    if (size < 16) {
      this.writeU8(144 + size);
    } else if (size < 65536) {
      this.writeU8(220);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(221);
      this.writeU32(size);
    } else {
      throw new Error(`Too large array: ${size}`);
    }
    for (const item of object) {
      this.doEncode(item, depth + 1);
    }
  }
  countWithoutUndefined(object, keys) {
    let count = 0;
    for (const key of keys) {
      if (object[key] !== void 0) {
        count++;
      }
    }
    return count;
  }
  encodeMap(object, depth) {
    const keys = Object.keys(object);
    if (this.sortKeys) {
      keys.sort();
    }
    const size = this.ignoreUndefined ? this.countWithoutUndefined(object, keys) : keys.length;
    if (size < 16) {
      this.writeU8(128 + size);
    } else if (size < 65536) {
      this.writeU8(222);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(223);
      this.writeU32(size);
    } else {
      throw new Error(`Too large map object: ${size}`);
    }
    for (const key of keys) {
      const value = object[key];
      if (!(this.ignoreUndefined && value === void 0)) {
        this.encodeString(key);
        this.doEncode(value, depth + 1);
      }
    }
  }
  encodeExtension(ext) {
    if (typeof ext.data === "function") {
      const data = ext.data(this.pos + 6);
      const size2 = data.length;
      if (size2 >= 4294967296) {
        throw new Error(`Too large extension object: ${size2}`);
      }
      this.writeU8(201);
      this.writeU32(size2);
      this.writeI8(ext.type);
      this.writeU8a(data);
      return;
    }
    const size = ext.data.length;
    if (size === 1) {
      this.writeU8(212);
    } else if (size === 2) {
      this.writeU8(213);
    } else if (size === 4) {
      this.writeU8(214);
    } else if (size === 8) {
      this.writeU8(215);
    } else if (size === 16) {
      this.writeU8(216);
    } else if (size < 256) {
      this.writeU8(199);
      this.writeU8(size);
    } else if (size < 65536) {
      this.writeU8(200);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(201);
      this.writeU32(size);
    } else {
      throw new Error(`Too large extension object: ${size}`);
    }
    this.writeI8(ext.type);
    this.writeU8a(ext.data);
  }
  writeU8(value) {
    this.ensureBufferSizeToWrite(1);
    this.view.setUint8(this.pos, value);
    this.pos++;
  }
  writeU8a(values) {
    const size = values.length;
    this.ensureBufferSizeToWrite(size);
    this.bytes.set(values, this.pos);
    this.pos += size;
  }
  writeI8(value) {
    this.ensureBufferSizeToWrite(1);
    this.view.setInt8(this.pos, value);
    this.pos++;
  }
  writeU16(value) {
    this.ensureBufferSizeToWrite(2);
    this.view.setUint16(this.pos, value);
    this.pos += 2;
  }
  writeI16(value) {
    this.ensureBufferSizeToWrite(2);
    this.view.setInt16(this.pos, value);
    this.pos += 2;
  }
  writeU32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setUint32(this.pos, value);
    this.pos += 4;
  }
  writeI32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setInt32(this.pos, value);
    this.pos += 4;
  }
  writeF32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setFloat32(this.pos, value);
    this.pos += 4;
  }
  writeF64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setFloat64(this.pos, value);
    this.pos += 8;
  }
  writeU64(value) {
    this.ensureBufferSizeToWrite(8);
    setUint64(this.view, this.pos, value);
    this.pos += 8;
  }
  writeI64(value) {
    this.ensureBufferSizeToWrite(8);
    setInt64(this.view, this.pos, value);
    this.pos += 8;
  }
  writeBigUint64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setBigUint64(this.pos, value);
    this.pos += 8;
  }
  writeBigInt64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setBigInt64(this.pos, value);
    this.pos += 8;
  }
};

// src/errors.ts
var ERROR_CODES = [
  "bad_request",
  "unauthorized",
  "forbidden",
  "not_found",
  "too_large",
  "rate_limited",
  "conflict",
  "unavailable",
  "internal"
];
var CloseCode = {
  NORMAL: 1e3,
  GOING_AWAY: 1001,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  UNAUTHORIZED: 4001,
  HELLO_TIMEOUT: 4002,
  PROTOCOL_ERROR: 4003,
  RATE_LIMITED: 4008,
  SLOW_CONSUMER: 4009,
  DRAINING: 4010
};
var ClipwireError = class extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
};
var RequestError = class extends ClipwireError {
  constructor(code, message, field) {
    super(`${code}: ${message}`);
    this.code = code;
    this.field = field;
    this.reason = message;
  }
};
var ClientError = class extends ClipwireError {
};
var RequestFailed = class _RequestFailed extends ClientError {
  constructor(code, reason, t = null) {
    super(`${t ? `${t}: ` : ""}${code}: ${reason}`);
    this.code = code;
    this.reason = reason;
    this.t = t;
    /** The field at fault, when the client found the problem itself. */
    this.field = null;
    /** True when the client refused the request before sending it. */
    this.local = false;
    /** With `rate_limited`: the hub's `retry_after_ms`, when it says when to try again. */
    this.retryAfterMs = null;
  }
  /** The most specific error for an `error` frame's `code`. */
  static fromWire(code, message, t = null, retryAfterMs) {
    const text2 = typeof message === "string" ? message : "";
    const raw = typeof code === "string" ? code : "internal";
    const cls = BY_CODE[raw];
    const failed = cls ? new cls(raw, text2, t) : new _RequestFailed(raw, text2, t);
    if (typeof retryAfterMs === "number" && retryAfterMs >= 0) failed.retryAfterMs = retryAfterMs;
    return failed;
  }
  /** A request refused before sending, from the validator's {@link RequestError}. */
  static local(error, t) {
    const failed = _RequestFailed.fromWire(error.code, error.reason, t);
    failed.field = error.field;
    failed.local = true;
    return failed;
  }
};
var BadRequest = class extends RequestFailed {
};
var Unauthorized = class extends RequestFailed {
};
var Forbidden = class extends RequestFailed {
};
var NotFound = class extends RequestFailed {
};
var TooLarge = class extends RequestFailed {
};
var RateLimited = class extends RequestFailed {
};
var Conflict = class extends RequestFailed {
};
var Unavailable = class extends RequestFailed {
};
var HubInternalError = class extends RequestFailed {
};
var BY_CODE = {
  bad_request: BadRequest,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  not_found: NotFound,
  too_large: TooLarge,
  rate_limited: RateLimited,
  conflict: Conflict,
  unavailable: Unavailable,
  internal: HubInternalError
};
var RequestTimeout = class extends ClientError {
  constructor(t, timeoutMs) {
    super(`${t}: no answer within ${timeoutMs} ms`);
    this.t = t;
    this.timeoutMs = timeoutMs;
  }
};
var ConnectionLost = class extends ClientError {
  constructor(t, code, reason) {
    super(`${t}: connection lost (${code}${reason ? ` ${reason}` : ""}) before the answer; it may or may not have been applied`);
    this.t = t;
    this.code = code;
    this.reason = reason;
  }
};
var ConnectFailed = class extends ClientError {
};
var ClientClosed = class extends ClientError {
  constructor(code, reason) {
    super(`client closed (${code}${reason ? `: ${reason}` : ""})`);
    this.code = code;
    this.reason = reason;
  }
};

// src/codec.ts
var DEFAULT_LIMITS = Object.freeze({
  max_frame_bytes: 64 * 1024,
  max_depth: 8,
  max_str_len: 16 * 1024,
  max_bin_len: 0,
  max_array_len: 1024,
  max_map_len: 1024,
  max_id_chars: 128,
  max_text_chars: 4e3,
  max_title_chars: 100,
  max_url_chars: 2048,
  max_emoji_chars: 32,
  max_share_targets: 100,
  max_history_limit: 100,
  max_group_members: 1e3
});
function limitsFrom(overrides) {
  const out = { ...DEFAULT_LIMITS };
  if (overrides) {
    for (const key of Object.keys(DEFAULT_LIMITS)) {
      const value = overrides[key];
      if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) out[key] = value;
    }
  }
  return out;
}
var FrameError = class extends ClipwireError {
  constructor(reason) {
    super(reason);
    this.reason = reason;
    this.closeCode = 4003;
    this.name = "FrameError";
  }
};
var FrameTooLarge = class extends FrameError {
  constructor(reason) {
    super(reason);
    this.closeCode = 1009;
    this.name = "FrameTooLarge";
  }
};
var TWO_32 = 4294967296;
var Reader = class {
  constructor(bytes, limits) {
    this.bytes = bytes;
    this.limits = limits;
    this.pos = 0;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n) {
    if (this.pos + n > this.bytes.length) throw new FrameError("not a valid msgpack value (truncated)");
  }
  u8() {
    this.need(1);
    return this.bytes[this.pos++];
  }
  u16() {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32() {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  u64() {
    this.need(8);
    const high = this.view.getUint32(this.pos);
    const low = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    if (high < 2097152) return high * TWO_32 + low;
    return BigInt(high) << 32n | BigInt(low);
  }
  i64() {
    this.need(8);
    const high = this.view.getInt32(this.pos);
    const low = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    if (high >= -2097152 && high < 2097152) return high * TWO_32 + low;
    return BigInt(high) << 32n | BigInt(low);
  }
  read(depth) {
    const b = this.u8();
    if (b <= 127) return b;
    if (b >= 224) return b - 256;
    if (b >= 160 && b <= 191) return this.str(b & 31);
    if (b >= 144 && b <= 159) return this.array(b & 15, depth);
    if (b >= 128 && b <= 143) return this.map(b & 15, depth);
    switch (b) {
      case 192:
        return null;
      case 194:
        return false;
      case 195:
        return true;
      case 196:
        return this.bin(this.u8());
      case 197:
        return this.bin(this.u16());
      case 198:
        return this.bin(this.u32());
      case 199:
        return this.ext(this.u8());
      case 200:
        return this.ext(this.u16());
      case 201:
        return this.ext(this.u32());
      case 202: {
        this.need(4);
        const v = this.view.getFloat32(this.pos);
        this.pos += 4;
        return v;
      }
      case 203: {
        this.need(8);
        const v = this.view.getFloat64(this.pos);
        this.pos += 8;
        return v;
      }
      case 204:
        return this.u8();
      case 205:
        return this.u16();
      case 206:
        return this.u32();
      case 207:
        return this.u64();
      case 208: {
        const v = this.u8();
        return v >= 128 ? v - 256 : v;
      }
      case 209: {
        const v = this.u16();
        return v >= 32768 ? v - 65536 : v;
      }
      case 210: {
        this.need(4);
        const v = this.view.getInt32(this.pos);
        this.pos += 4;
        return v;
      }
      case 211:
        return this.i64();
      case 212:
        return this.ext(1);
      case 213:
        return this.ext(2);
      case 214:
        return this.ext(4);
      case 215:
        return this.ext(8);
      case 216:
        return this.ext(16);
      case 217:
        return this.str(this.u8());
      case 218:
        return this.str(this.u16());
      case 219:
        return this.str(this.u32());
      case 220:
        return this.array(this.u16(), depth);
      case 221:
        return this.array(this.u32(), depth);
      case 222:
        return this.map(this.u16(), depth);
      case 223:
        return this.map(this.u32(), depth);
      default:
        throw new FrameError(`not a valid msgpack value (byte 0x${b.toString(16)})`);
    }
  }
  str(length) {
    if (length > this.limits.max_str_len) {
      throw new FrameError(`not a valid msgpack value (string of ${length} bytes exceeds ${this.limits.max_str_len})`);
    }
    this.need(length);
    const start = this.pos;
    this.pos += length;
    return utf8Decode(this.bytes, start, this.pos);
  }
  bin(length) {
    if (length > this.limits.max_bin_len) {
      throw new FrameError("not a valid msgpack value (bin longer than max_bin_len)");
    }
    this.need(length);
    if (this.limits.max_bin_len === 0) throw new FrameError("bin and ext values are not allowed");
    const out = this.bytes.slice(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }
  ext(length) {
    if (length > 0) throw new FrameError("not a valid msgpack value (ext longer than 0)");
    this.need(1);
    throw new FrameError("bin and ext values are not allowed");
  }
  array(length, depth) {
    if (length > this.limits.max_array_len) {
      throw new FrameError(`not a valid msgpack value (array of ${length} exceeds ${this.limits.max_array_len})`);
    }
    if (depth > this.limits.max_depth) throw new FrameError(`nesting deeper than ${this.limits.max_depth}`);
    const out = [];
    for (let i = 0; i < length; i++) out.push(this.read(depth + 1));
    return out;
  }
  map(length, depth) {
    if (length > this.limits.max_map_len) {
      throw new FrameError(`not a valid msgpack value (map of ${length} exceeds ${this.limits.max_map_len})`);
    }
    if (depth > this.limits.max_depth) throw new FrameError(`nesting deeper than ${this.limits.max_depth}`);
    const out = {};
    for (let i = 0; i < length; i++) {
      const key = this.read(depth + 1);
      if (typeof key !== "string") throw new FrameError("map keys must be strings");
      const value = this.read(depth + 1);
      if (key === "__proto__") {
        Object.defineProperty(out, key, { value, enumerable: true, configurable: true, writable: true });
      } else {
        out[key] = value;
      }
    }
    return out;
  }
};
function utf8Decode(bytes, start, end) {
  let ascii = true;
  for (let i2 = start; i2 < end; i2++) {
    if (bytes[i2] >= 128) {
      ascii = false;
      break;
    }
  }
  if (ascii) return chunked(bytes.subarray(start, end));
  const units = [];
  let i = start;
  const bad2 = () => {
    throw new FrameError("not a valid msgpack value (invalid UTF-8 in a string)");
  };
  const cont = (lo = 128, hi = 191) => {
    if (i >= end) bad2();
    const c = bytes[i++];
    if (c < lo || c > hi) bad2();
    return c & 63;
  };
  while (i < end) {
    const b0 = bytes[i++];
    let cp;
    if (b0 < 128) cp = b0;
    else if (b0 >= 194 && b0 <= 223) cp = (b0 & 31) << 6 | cont();
    else if (b0 >= 224 && b0 <= 239) {
      const lo = b0 === 224 ? 160 : 128;
      const hi = b0 === 237 ? 159 : 191;
      const c1 = cont(lo, hi);
      cp = (b0 & 15) << 12 | c1 << 6 | cont();
    } else if (b0 >= 240 && b0 <= 244) {
      const lo = b0 === 240 ? 144 : 128;
      const hi = b0 === 244 ? 143 : 191;
      const c1 = cont(lo, hi);
      const c2 = cont();
      cp = (b0 & 7) << 18 | c1 << 12 | c2 << 6 | cont();
    } else {
      return bad2();
    }
    if (cp >= 65536) {
      cp -= 65536;
      units.push(55296 + (cp >> 10), 56320 + (cp & 1023));
    } else {
      units.push(cp);
    }
  }
  return chunked(units);
}
function chunked(units) {
  let out = "";
  for (let i = 0; i < units.length; i += 4096) {
    const part = Array.prototype.slice.call(units, i, i + 4096);
    out += String.fromCharCode.apply(null, part);
  }
  return out;
}
function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}
function decodeValue(data, limits = DEFAULT_LIMITS) {
  const bytes = asBytes(data);
  if (bytes.length > limits.max_frame_bytes) {
    throw new FrameTooLarge(`frame of ${bytes.length} bytes exceeds ${limits.max_frame_bytes}`);
  }
  const reader = new Reader(bytes, limits);
  const value = reader.read(1);
  if (reader.pos !== bytes.length) throw new FrameError("trailing bytes after the msgpack value");
  return value;
}
function decodeFrame(data, limits = DEFAULT_LIMITS) {
  const value = decodeValue(data, limits);
  if (!isPlainMap(value)) throw new FrameError(`frame must be a msgpack map, not ${kindOf(value)}`);
  if (typeof value["t"] !== "string") throw new FrameError("frame must carry a string 't'");
  return value;
}
var encoder = new Encoder({ ignoreUndefined: true });
var bigEncoder = new Encoder({ ignoreUndefined: true, useBigInt64: true });
var MIN_INT64 = -(2n ** 63n);
var MAX_UINT64 = 2n ** 64n - 1n;
function isPlainMap(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
function kindOf(value) {
  if (Array.isArray(value)) return "an array";
  if (value === null || value === void 0) return "nil";
  if (value instanceof Uint8Array) return "a bytes";
  if (typeof value === "number") return Number.isInteger(value) ? "an int" : "a float";
  return `a ${typeof value}`;
}
function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 128) n += 1;
    else if (c < 2048) n += 2;
    else if (c >= 55296 && c <= 56319) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 56320 || d > 57343) return -1;
      n += 4;
      i++;
    } else if (c >= 56320 && c <= 57343) return -1;
    else n += 3;
  }
  return n;
}
function checkValue(value, limits = DEFAULT_LIMITS) {
  let big = false;
  const stack = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop();
    if (item === null || item === void 0 || typeof item === "boolean") continue;
    if (typeof item === "number") {
      if (!Number.isFinite(item)) throw new FrameError("numbers must be finite");
      if (Number.isInteger(item) && !Number.isSafeInteger(item)) {
        if (item < -(2 ** 63) || item >= 2 ** 64) throw new FrameError("integer out of the 64-bit range");
        big = true;
      }
      continue;
    }
    if (typeof item === "bigint") {
      if (item < MIN_INT64 || item > MAX_UINT64) throw new FrameError("integer out of the 64-bit range");
      big = true;
      continue;
    }
    if (typeof item === "string") {
      const bytes = utf8Length(item);
      if (bytes < 0) throw new FrameError("strings must be valid Unicode (a lone surrogate cannot be sent)");
      if (bytes > limits.max_str_len) {
        throw new FrameError(`a string of ${bytes} bytes exceeds max_str_len ${limits.max_str_len}`);
      }
      continue;
    }
    if (Array.isArray(item)) {
      if (depth > limits.max_depth) throw new FrameError(`nesting deeper than ${limits.max_depth}`);
      if (item.length > limits.max_array_len) {
        throw new FrameError(`an array of ${item.length} exceeds max_array_len ${limits.max_array_len}`);
      }
      for (const v of item) stack.push([v, depth + 1]);
      continue;
    }
    if (isPlainMap(item)) {
      if (depth > limits.max_depth) throw new FrameError(`nesting deeper than ${limits.max_depth}`);
      const keys = Object.keys(item).filter((k) => item[k] !== void 0);
      if (keys.length > limits.max_map_len) {
        throw new FrameError(`a map of ${keys.length} exceeds max_map_len ${limits.max_map_len}`);
      }
      for (const key of keys) {
        stack.push([key, depth + 1], [item[key], depth + 1]);
      }
      continue;
    }
    throw new FrameError(`cannot send ${kindOf(item)}: bin and ext values are not allowed`);
  }
  return big;
}
function widen(value) {
  if (typeof value === "number") {
    return Number.isInteger(value) && (value >= TWO_32 || value < -2147483648) ? BigInt(value) : value;
  }
  if (Array.isArray(value)) return value.map(widen);
  if (isPlainMap(value)) {
    const out = {};
    for (const key of Object.keys(value)) {
      const v = widen(value[key]);
      if (key === "__proto__") Object.defineProperty(out, key, { value: v, enumerable: true, configurable: true, writable: true });
      else out[key] = v;
    }
    return out;
  }
  return value;
}
function encodeValue(value, limits = DEFAULT_LIMITS) {
  const big = checkValue(value, limits);
  const bytes = big ? bigEncoder.encode(widen(value)) : encoder.encode(value);
  if (bytes.length > limits.max_frame_bytes) {
    throw new FrameTooLarge(`frame of ${bytes.length} bytes exceeds ${limits.max_frame_bytes}`);
  }
  return bytes;
}
function encodeFrame(frame, limits = DEFAULT_LIMITS) {
  if (!isPlainMap(frame) || typeof frame.t !== "string") throw new FrameError("frame must be a map with a string 't'");
  return encodeValue(frame, limits);
}

// src/models.ts
function isMap(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Uint8Array);
}
function optStr(value) {
  return typeof value === "string" ? value : void 0;
}
function optInt(value) {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "bigint") return Number(value);
  return void 0;
}
function int(value) {
  return optInt(value) ?? 0;
}
function own(data, key) {
  return Object.prototype.hasOwnProperty.call(data, key) ? data[key] : void 0;
}
function compact(value) {
  for (const key of Object.keys(value)) {
    if (value[key] === void 0) delete value[key];
  }
  return value;
}
function cardFromWire(value) {
  if (!isMap(value) || typeof own(value, "id") !== "string") return void 0;
  return compact({
    id: value["id"],
    url: String(own(value, "url") ?? ""),
    thumb: optStr(own(value, "thumb")),
    caption: optStr(own(value, "caption")),
    author: optStr(own(value, "author")),
    durationMs: optInt(own(value, "duration_ms")),
    atMs: optInt(own(value, "at_ms"))
  });
}
function cardToWire(card) {
  return compact({
    id: card.id,
    url: card.url,
    thumb: card.thumb,
    caption: card.caption,
    author: card.author,
    duration_ms: card.durationMs,
    at_ms: card.atMs
  });
}
function replyToWire(reply2) {
  return reply2.atMs === void 0 || reply2.atMs === null ? { seq: reply2.seq } : { seq: reply2.seq, at_ms: reply2.atMs };
}
function replyFromWire(value) {
  if (!isMap(value)) return void 0;
  const seq = optInt(own(value, "seq"));
  if (seq === void 0) return void 0;
  return compact({ seq, atMs: optInt(own(value, "at_ms")) });
}
function reactionFromWire(data) {
  const moments = own(data, "moments");
  return {
    emoji: String(own(data, "emoji") ?? ""),
    count: int(own(data, "count")),
    me: Boolean(own(data, "me")),
    moments: Array.isArray(moments) ? moments.map(optInt).filter((m) => m !== void 0) : []
  };
}
function messageFromWire(data) {
  const reactions = own(data, "reactions");
  return compact({
    type: "message",
    conv: String(own(data, "conv") ?? ""),
    seq: int(own(data, "seq")),
    sender: String(own(data, "from") ?? ""),
    ts: int(own(data, "ts")),
    kind: String(own(data, "kind") ?? "text"),
    text: optStr(own(data, "text")),
    video: cardFromWire(own(data, "video")),
    reply: replyFromWire(own(data, "reply")),
    cmid: String(own(data, "cmid") ?? ""),
    unsent: Boolean(own(data, "unsent")),
    hidden: Boolean(own(data, "hidden")),
    reactions: Array.isArray(reactions) ? reactions.filter(isMap).map(reactionFromWire) : []
  });
}
function tombstone(msg) {
  const { text: _text, video: _video, reply: _reply, ...rest } = msg;
  return { ...rest, unsent: true, reactions: [] };
}
function watchFromWire(data) {
  return {
    type: "watch",
    conv: String(own(data, "conv") ?? ""),
    by: String(own(data, "by") ?? ""),
    videoId: String(own(data, "video_id") ?? ""),
    posMs: int(own(data, "pos_ms")),
    playing: Boolean(own(data, "playing")),
    ts: int(own(data, "ts"))
  };
}
function convName(conv) {
  if (conv.kind === "dm") return conv.peer || conv.conv;
  return conv.title || conv.conv;
}
function conversationFromWire(data, previous) {
  const members2 = own(data, "members");
  const convId = previous?.conv ?? String(own(data, "conv") ?? "");
  const base = previous ?? {
    conv: convId,
    kind: String(own(data, "kind") ?? "group"),
    lastSeq: 0,
    readSeq: 0,
    unread: 0,
    members: [],
    name: convId
  };
  const has = (key) => Object.prototype.hasOwnProperty.call(data, key);
  const watch = own(data, "watch");
  const out = compact({
    conv: base.conv,
    kind: optStr(own(data, "kind")) ?? base.kind,
    lastSeq: Math.max(int(own(data, "last_seq")), base.lastSeq),
    readSeq: has("read_seq") ? int(own(data, "read_seq")) : base.readSeq,
    unread: has("unread") ? int(own(data, "unread")) : base.unread,
    peer: optStr(own(data, "peer")) || base.peer,
    title: has("title") ? optStr(own(data, "title")) : base.title,
    members: Array.isArray(members2) ? members2.filter((m) => typeof m === "string") : base.members,
    owner: has("owner") ? optStr(own(data, "owner")) : base.owner,
    watch: isMap(watch) ? watchFromWire({ ...watch, conv: base.conv }) : base.watch
  });
  return { ...out, name: convName(out) };
}
function withConversation(conv, changes) {
  const out = { ...conv, ...changes };
  return { ...out, name: convName(out) };
}
function presenceFromWire(data) {
  return {
    type: "presence",
    user: String(own(data, "user") ?? ""),
    online: Boolean(own(data, "online")),
    lastSeen: optInt(own(data, "last_seen")) ?? null
  };
}
function shareResultFromWire(data) {
  const targetKind = Object.prototype.hasOwnProperty.call(data, "to") ? "to" : "conv";
  const out = compact({
    target: String(own(data, targetKind)),
    targetKind,
    conv: optStr(own(data, "conv")),
    seq: optInt(own(data, "seq")),
    ts: optInt(own(data, "ts")),
    error: optStr(own(data, "error")),
    ok: false
  });
  out.ok = out.error === void 0 && out.seq !== void 0;
  return out;
}
function eventFromWire(t, data) {
  const conv = optStr(own(data, "conv"));
  const user2 = optStr(own(data, "user"));
  const seq = optInt(own(data, "seq"));
  switch (t) {
    case "presence":
      return user2 !== void 0 ? presenceFromWire(data) : void 0;
    case "typing":
      return conv !== void 0 && user2 !== void 0 ? { type: "typing", conv, user: user2 } : void 0;
    case "read":
      return conv !== void 0 && user2 !== void 0 && seq !== void 0 ? { type: "read", conv, user: user2, seq } : void 0;
    case "reaction": {
      const emoji = optStr(own(data, "emoji"));
      if (conv === void 0 || user2 === void 0 || seq === void 0 || emoji === void 0) return void 0;
      return compact({
        type: "reaction",
        conv,
        seq,
        user: user2,
        emoji,
        on: Boolean(own(data, "on")),
        atMs: optInt(own(data, "at_ms"))
      });
    }
    case "unsent":
      return conv !== void 0 && seq !== void 0 ? { type: "unsent", conv, seq } : void 0;
    case "watch":
      return conv !== void 0 && optStr(own(data, "video_id")) !== void 0 ? watchFromWire(data) : void 0;
    case "friend": {
      const state = optStr(own(data, "state"));
      if (user2 === void 0 || state === void 0) return void 0;
      return compact({ type: "friend", user: user2, state, direction: optStr(own(data, "direction")), was: null });
    }
    default:
      return void 0;
  }
}

// src/delivery.ts
var Wake = class {
  constructor() {
    this.waiters = [];
  }
  set() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
  wait(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const waiters = this.waiters;
      function done() {
        clearTimeout(timer);
        const at = waiters.indexOf(done);
        if (at >= 0) waiters.splice(at, 1);
        resolve();
      }
      waiters.push(done);
    });
  }
};
var ConvSync = class {
  constructor(delivered, want) {
    this.delivered = delivered;
    this.want = want;
    /** seq -> message waiting for its turn; null marks the client's own send (held, never emitted). */
    this.buffer = /* @__PURE__ */ new Map();
    /** Holes up to this seq will not arrive by themselves: fetch them without waiting. */
    this.urgentUntil = 0;
    this.worker = null;
    this.wake = new Wake();
  }
  contiguous() {
    let seq = this.delivered;
    while (this.buffer.has(seq + 1)) seq++;
    return seq;
  }
};
var sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
var Delivery = class {
  constructor(stream, fetch, isOwn, maxBuffered, graceMs, log, page = 100) {
    this.stream = stream;
    this.fetch = fetch;
    this.isOwn = isOwn;
    this.maxBuffered = maxBuffered;
    this.graceMs = graceMs;
    this.log = log;
    this.convs = /* @__PURE__ */ new Map();
    this.stopped = false;
    /** Repeats of a (conv, seq) already held, dropped. */
    this.duplicates = 0;
    this.page = page;
  }
  knows(conv) {
    return this.convs.has(conv);
  }
  /** Start following `conv`: everything up to `delivered` counts as delivered. */
  track(conv, delivered, want, urgent) {
    if (!this.convs.has(conv)) this.convs.set(conv, new ConvSync(delivered, Math.max(want, delivered)));
    this.raiseWant(conv, want, urgent);
  }
  /** The hub says `conv` holds messages up to `lastSeq`. */
  raiseWant(conv, lastSeq, urgent = false) {
    const st = this.convs.get(conv);
    if (st === void 0) return;
    st.want = Math.max(st.want, lastSeq);
    if (urgent) st.urgentUntil = Math.max(st.urgentUntil, lastSeq);
    if (st.want > st.delivered) this.kick(st, conv);
  }
  forget(conv) {
    const st = this.convs.get(conv);
    this.convs.delete(conv);
    st?.wake.set();
  }
  onMessage(msg) {
    let st = this.convs.get(msg.conv);
    if (st === void 0) {
      st = new ConvSync(msg.seq - 1, msg.seq - 1);
      this.convs.set(msg.conv, st);
    }
    if (msg.seq <= st.delivered || st.buffer.has(msg.seq)) {
      this.duplicates++;
      return;
    }
    st.want = Math.max(st.want, msg.seq);
    if (st.worker === null && st.buffer.size === 0 && msg.seq === st.delivered + 1) {
      if (this.isOwn(msg)) {
        st.delivered = msg.seq;
        return;
      }
      if (this.stream.offer(msg)) {
        st.delivered = msg.seq;
        return;
      }
    }
    if (st.buffer.size < this.maxBuffered) st.buffer.set(msg.seq, msg);
    else st.urgentUntil = Math.max(st.urgentUntil, msg.seq);
    this.kick(st, msg.conv);
  }
  /** The client's own send was stored as `seq`: held, but not an event. */
  onOwn(conv, seq) {
    let st = this.convs.get(conv);
    if (st === void 0) {
      st = new ConvSync(seq - 1, seq - 1);
      this.convs.set(conv, st);
    }
    if (seq <= st.delivered) return;
    st.want = Math.max(st.want, seq);
    if (st.worker === null && st.buffer.size === 0 && seq === st.delivered + 1) {
      st.delivered = seq;
      return;
    }
    st.buffer.set(seq, null);
    this.kick(st, conv);
  }
  /** Message `seq` was taken back: if it still waits here, it goes out as a tombstone. */
  onUnsent(conv, seq) {
    const st = this.convs.get(conv);
    const msg = st?.buffer.get(seq);
    if (st !== void 0 && msg) st.buffer.set(seq, tombstone(msg));
  }
  onGap(conv, fromSeq, toSeq) {
    if (!this.convs.has(conv)) this.convs.set(conv, new ConvSync(fromSeq - 1, fromSeq - 1));
    this.raiseWant(conv, toSeq, true);
  }
  /** [conv, highest contiguous seq held, whether more is known to exist] for each conv. */
  resumePoints() {
    const out = [];
    for (const [conv, st] of this.convs) {
      const seq = st.contiguous();
      out.push([conv, seq, seq < st.want]);
    }
    return out;
  }
  /** No more deliveries; what was received stays readable through `resumePoints()`. */
  stop() {
    this.stopped = true;
    for (const st of this.convs.values()) st.wake.set();
  }
  // -- the per-conversation worker ---------------------------------------
  kick(st, conv) {
    if (this.stopped) return;
    if (st.worker === null) {
      st.worker = this.run(conv, st);
    } else {
      st.wake.set();
    }
  }
  alive(conv, st) {
    return !this.stopped && this.convs.get(conv) === st;
  }
  async run(conv, st) {
    await Promise.resolve();
    let failures = 0;
    try {
      while (st.delivered < st.want && this.alive(conv, st)) {
        const next = st.delivered + 1;
        if (st.buffer.has(next)) {
          const msg = st.buffer.get(next);
          st.buffer.delete(next);
          st.delivered = next;
          if (msg !== null && !this.isOwn(msg)) {
            if (!await this.stream.put(msg)) return;
          }
          continue;
        }
        if (next > st.urgentUntil && await this.arrives(st, next)) continue;
        if (!this.alive(conv, st)) return;
        const first = next;
        let last = Math.min(st.want, next + this.page - 1);
        for (const seq of st.buffer.keys()) if (seq > next) last = Math.min(last, seq - 1);
        let page;
        try {
          page = await this.fetch(conv, first, last);
        } catch (error) {
          if (error instanceof Forbidden || error instanceof NotFound) {
            this.log.info(`${conv}: no longer readable; stop following it`);
            if (this.convs.get(conv) === st) this.convs.delete(conv);
            return;
          }
          if (error instanceof ClientClosed) return;
          if (error instanceof ConnectionLost) continue;
          failures++;
          const level = error instanceof RequestFailed ? "warn" : "info";
          this.log[level](`${conv}: filling ${first}..${last} failed (${String(error)}); retrying`);
          await sleep(Math.min(5e3, 200 * 2 ** failures));
          continue;
        }
        failures = 0;
        for (const msg of page) {
          if (msg.seq > st.delivered && !st.buffer.has(msg.seq)) st.buffer.set(msg.seq, msg);
        }
        if (!st.buffer.has(next)) {
          this.log.warn(`${conv}: message ${next} is not in history; skipping it`);
          st.delivered = next;
        }
      }
      for (const seq of [...st.buffer.keys()]) if (seq <= st.delivered) st.buffer.delete(seq);
    } finally {
      st.worker = null;
      if (this.alive(conv, st) && st.want > st.delivered) {
        setTimeout(() => {
          if (this.alive(conv, st) && st.worker === null && st.want > st.delivered) this.kick(st, conv);
        }, 0);
      }
    }
  }
  /** Wait up to the grace period for `seq` to arrive by itself. */
  async arrives(st, seq) {
    const deadline = Date.now() + this.graceMs;
    while (!st.buffer.has(seq) && seq > st.urgentUntil && !this.stopped) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return false;
      await st.wake.wait(remaining);
    }
    return st.buffer.has(seq);
  }
};

// src/friends.ts
var Friends = class {
  constructor() {
    this.friends = /* @__PURE__ */ new Map();
    this.requests = [];
  }
  /** `"friends"`, `"in"` or `"out"` (a pending request), or null. */
  relation(user2) {
    if (this.friends.has(user2)) return "friends";
    return this.requests.find((r) => r.user === user2)?.direction ?? null;
  }
  /** Take `requests` and `friends` from a welcome; return the changes as events. */
  load(welcome) {
    const before = this.relations();
    const oldFriends = this.friends;
    const requests = welcome["requests"];
    const friends = welcome["friends"];
    this.requests = (Array.isArray(requests) ? requests : []).filter((r) => isMap(r) && typeof r["user"] === "string").map((r) => ({ user: r["user"], direction: String(r["direction"] ?? "in") }));
    this.friends = /* @__PURE__ */ new Map();
    for (const f of Array.isArray(friends) ? friends : []) {
      if (isMap(f) && typeof f["user"] === "string") this.friends.set(f["user"], presenceFromWire(f));
    }
    const after = this.relations();
    const changes = [];
    for (const user2 of /* @__PURE__ */ new Set([...before.keys(), ...after.keys()])) {
      const was = before.get(user2) ?? null;
      const now = after.get(user2) ?? null;
      if (was === now) continue;
      if (now === "friends") changes.push({ type: "friend", user: user2, state: "accepted", was });
      else if (now !== null) changes.push({ type: "friend", user: user2, state: "requested", direction: now, was });
      else changes.push({ type: "friend", user: user2, state: "removed", was });
    }
    for (const [user2, state] of this.friends) {
      const old = oldFriends.get(user2);
      if (state.online !== (old !== void 0 && old.online)) changes.push(state);
    }
    return changes;
  }
  /** Follow one hub event; a FriendEvent comes back with `was` filled in. */
  apply(event) {
    if (event.type === "presence") {
      if (this.friends.has(event.user)) this.friends.set(event.user, event);
      return event;
    }
    const user2 = event.user;
    const was = this.relation(user2);
    this.requests = this.requests.filter((r) => r.user !== user2);
    if (event.state === "requested") {
      this.friends.delete(user2);
      this.requests.push({ user: user2, direction: event.direction ?? "in" });
    } else if (event.state === "accepted") {
      if (!this.friends.has(user2)) this.friends.set(user2, { type: "presence", user: user2, online: false, lastSeen: null });
    } else {
      this.friends.delete(user2);
    }
    return { ...event, was };
  }
  /** Presence answers: update the friends among them. */
  seen(states) {
    for (const state of states) if (this.friends.has(state.user)) this.friends.set(state.user, state);
  }
  relations() {
    const out = /* @__PURE__ */ new Map();
    for (const user2 of [...this.friends.keys(), ...this.requests.map((r) => r.user)]) out.set(user2, this.relation(user2));
    return out;
  }
};

// src/pacing.ts
var KIND_OF = {
  send: "send",
  share: "send",
  history: "history",
  "friend.request": "friend"
};
var KINDS = ["send", "history", "friend"];
var DEFAULT_RETRY_MS = 1e3;
var MAX_TIMER = 2 ** 31 - 1;
var monotonicMs = () => performance.now();
function shareCost(to, convs) {
  return Math.max(1, new Set(to).size + new Set(convs).size);
}
var TokenBucket = class {
  constructor() {
    this.ratePerMs = null;
    // null: not announced; only refusals pace
    this.cap = 0;
    this.tokens = 0;
    this.stamp = 0;
    this.heldUntil = 0;
  }
  /** A new connection: its buckets on the hub start full, so does this one. */
  reset(ratePerS, burst, now) {
    if (typeof ratePerS !== "number" || typeof burst !== "number" || !(ratePerS > 0) || !(burst > 0)) {
      this.ratePerMs = null;
      return;
    }
    this.ratePerMs = ratePerS / 1e3;
    this.cap = Math.max(1, burst - Math.max(1, burst / 10));
    this.tokens = this.cap;
    this.stamp = now;
  }
  /** Milliseconds until `cost` can be spent (0: now); a cost of 0 (a repeat the hub
   *  has set aside the tokens for) waits only for the hold. */
  waitMs(cost, now) {
    const held = Math.max(0, this.heldUntil - now);
    if (this.ratePerMs === null || cost <= 0) return held;
    this.refill(now);
    return Math.max(held, (Math.min(cost, this.cap) - this.tokens) / this.ratePerMs);
  }
  take(cost, now) {
    if (this.ratePerMs === null) return;
    this.refill(now);
    this.tokens -= cost;
  }
  /** The hub refused and set the cost aside until `until`: spend nothing before then,
   *  and be empty then (the hub's bucket is, once the repeat is accepted). */
  hold(until, now) {
    this.heldUntil = Math.max(this.heldUntil, until);
    if (this.ratePerMs === null) return;
    this.refill(now);
    this.tokens = Math.min(this.tokens, (now - this.heldUntil) * this.ratePerMs);
  }
  refill(now) {
    this.tokens = Math.min(this.cap, this.tokens + (now - this.stamp) * this.ratePerMs);
    this.stamp = now;
  }
};
var Pacer = class {
  constructor(release, maxQueued) {
    this.release = release;
    this.maxQueued = maxQueued;
    this.buckets = new Map(KINDS.map((k) => [k, new TokenBucket()]));
    this.queue = /* @__PURE__ */ new Map();
    // released in id order: call order
    this.onWire = /* @__PURE__ */ new Map();
    this.busy = /* @__PURE__ */ new Set();
    // conversations with a request on the wire
    this.setAside = /* @__PURE__ */ new Set();
    // refused on this connection: the repeat is paid
    this.isOnline = false;
    this.scanPending = false;
    this.timer = null;
  }
  get full() {
    return this.queue.size >= this.maxQueued;
  }
  /** A welcome: buckets full at the announced rates, then release what waits. */
  online(limits) {
    const at = monotonicMs();
    for (const [kind, bucket] of this.buckets) bucket.reset(limits[`rate_${kind}_per_s`], limits[`rate_${kind}_burst`], at);
    this.isOnline = true;
    this.kick();
  }
  /** The connection dropped: what was on the wire waits here for the next one. */
  offline() {
    this.isOnline = false;
    this.setAside.clear();
    for (const call of [...this.onWire.values()]) this.enqueue(call);
  }
  /** Queue `call` at its place in call order (again, after a drop or a refusal). */
  enqueue(call) {
    this.forget(call);
    this.queue.set(call.id, call);
    this.kick();
  }
  /** The hub answered `rate_limited`: hold the kind, then send `call` again. */
  refused(call, retryAfterMs) {
    const at = monotonicMs();
    this.buckets.get(call.kind).hold(at + (retryAfterMs ?? DEFAULT_RETRY_MS), at);
    this.setAside.add(call.id);
    this.enqueue(call);
  }
  /** `call` got its answer, or failed: forget it. */
  answered(call) {
    this.forget(call);
    this.queue.delete(call.id);
    this.setAside.delete(call.id);
    this.kick();
  }
  close() {
    this.isOnline = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.clear();
    this.onWire.clear();
    this.busy.clear();
    this.setAside.clear();
  }
  forget(call) {
    if (this.onWire.delete(call.id)) for (const key of call.keys) this.busy.delete(key);
  }
  /** Scan once the current burst of calls is queued (a microtask later). */
  kick() {
    if (this.scanPending || !this.isOnline || this.queue.size === 0) return;
    this.scanPending = true;
    queueMicrotask(() => {
      this.scanPending = false;
      this.scan();
    });
  }
  /** Send what may go now, in call order; set a timer for when more may. */
  scan() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const blockedKeys = new Set(this.busy);
    const blockedKinds = /* @__PURE__ */ new Set();
    let soonest = null;
    for (const call of [...this.queue.values()].sort((a, b) => a.id - b.id)) {
      if (!this.isOnline || blockedKinds.size === KINDS.length) break;
      if (!this.queue.has(call.id)) continue;
      if (call.done) {
        this.queue.delete(call.id);
        continue;
      }
      if (blockedKinds.has(call.kind) || call.keys.some((key) => blockedKeys.has(key))) {
        for (const key of call.keys) blockedKeys.add(key);
        continue;
      }
      const bucket = this.buckets.get(call.kind);
      const at = monotonicMs();
      const cost = this.setAside.has(call.id) ? 0 : call.cost;
      const wait = bucket.waitMs(cost, at);
      if (wait > 0) {
        blockedKinds.add(call.kind);
        for (const key of call.keys) blockedKeys.add(key);
        soonest = soonest === null ? wait : Math.min(soonest, wait);
        continue;
      }
      bucket.take(cost, at);
      this.queue.delete(call.id);
      this.onWire.set(call.id, call);
      for (const key of call.keys) {
        this.busy.add(key);
        blockedKeys.add(key);
      }
      this.release(call);
    }
    if (soonest !== null && this.isOnline) {
      this.timer = setTimeout(() => this.scan(), Math.min(Math.ceil(soonest), MAX_TIMER));
    }
  }
};

// src/stream.ts
var EventStream = class {
  constructor(capacity, onError) {
    this.capacity = capacity;
    this.onError = onError;
    this.items = [];
    this.consumers = /* @__PURE__ */ new Set();
    this.iterators = /* @__PURE__ */ new Set();
    this.roomWaiters = [];
    this.pumping = false;
    this.ended = false;
    this.endError = null;
    /** Non-message events dropped because the queue was full. */
    this.dropped = 0;
  }
  get size() {
    return this.items.length;
  }
  get full() {
    return this.items.length >= this.capacity;
  }
  get isEnded() {
    return this.ended;
  }
  /** Queue an event if there is room; false if the queue is full or ended. */
  offer(event) {
    if (this.ended || this.full) return false;
    this.items.push(event);
    this.pump();
    return true;
  }
  /** Queue a non-message event, or drop it (and count) when the queue is full. */
  emit(event) {
    if (this.ended) return false;
    if (!this.offer(event)) {
      this.dropped++;
      return false;
    }
    return true;
  }
  /** Queue an event, waiting for room. Resolves false if the stream ended meanwhile. */
  async put(event) {
    while (!this.ended && this.full) {
      await new Promise((resolve) => this.roomWaiters.push(resolve));
    }
    return this.offer(event);
  }
  /** No more events. `error` (the client closed for good by the hub) ends iterators with it. */
  end(error) {
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    this.wakeRoom();
    this.pump();
  }
  /** Drop what is queued: the client was closed by the application. */
  clear() {
    this.items.length = 0;
    this.wakeRoom();
  }
  subscribe(consumer) {
    this.consumers.add(consumer);
    this.pump();
    return () => {
      this.consumers.delete(consumer);
    };
  }
  iterator() {
    const it = new EventIterator(this, this.capacity);
    this.iterators.add(it);
    this.consumers.add(it.consumer);
    if (this.ended && this.items.length === 0) it.finish(this.endError);
    this.pump();
    return it;
  }
  /** Called by an iterator that is done. */
  release(it) {
    this.iterators.delete(it);
    this.consumers.delete(it.consumer);
  }
  wakeRoom() {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const wake of waiters) wake();
  }
  pump() {
    if (this.pumping) return;
    this.pumping = true;
    void this.run().finally(() => {
      this.pumping = false;
      if (this.items.length > 0 && this.consumers.size > 0 || this.pendingFinish()) this.pump();
    });
  }
  pendingFinish() {
    return this.ended && this.items.length === 0 && [...this.iterators].some((it) => !it.finished);
  }
  async run() {
    await Promise.resolve();
    while (this.items.length > 0 && this.consumers.size > 0) {
      const event = this.items.shift();
      this.wakeRoom();
      for (const consumer of [...this.consumers]) {
        try {
          const result = consumer(event);
          if (result && typeof result.then === "function") await result;
        } catch (error) {
          this.onError(error);
        }
      }
    }
    if (this.ended && this.items.length === 0) {
      for (const it of this.iterators) it.finish(this.endError);
    }
  }
};
var EventIterator = class {
  constructor(stream, capacity) {
    this.stream = stream;
    this.capacity = capacity;
    this.buffer = [];
    this.waiting = null;
    this.failing = null;
    this.roomWaiter = null;
    this.error = null;
    this.finished = false;
    this.done = false;
    this.consumer = (event) => {
      if (this.done) return;
      if (this.waiting) {
        const resolve = this.waiting;
        this.waiting = this.failing = null;
        resolve({ value: event, done: false });
        return;
      }
      this.buffer.push(event);
      if (this.buffer.length >= this.capacity) {
        return new Promise((resolve) => {
          this.roomWaiter = resolve;
        });
      }
    };
  }
  finish(error) {
    if (this.finished) return;
    this.finished = true;
    this.error = error;
    this.settle();
  }
  settle() {
    if (!this.waiting || this.buffer.length > 0) return;
    const resolve = this.waiting;
    const reject = this.failing;
    this.waiting = this.failing = null;
    this.close();
    if (this.error) reject(this.error);
    else resolve({ value: void 0, done: true });
  }
  close() {
    this.done = true;
    this.stream.release(this);
    this.roomWaiter?.();
    this.roomWaiter = null;
  }
  next() {
    if (this.buffer.length > 0) {
      const value = this.buffer.shift();
      const wake = this.roomWaiter;
      this.roomWaiter = null;
      wake?.();
      return Promise.resolve({ value, done: false });
    }
    if (this.done) return Promise.resolve({ value: void 0, done: true });
    if (this.finished) {
      this.close();
      return this.error ? Promise.reject(this.error) : Promise.resolve({ value: void 0, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failing = reject;
    });
  }
  return() {
    this.buffer.length = 0;
    const waiting = this.waiting;
    this.waiting = this.failing = null;
    this.close();
    waiting?.({ value: void 0, done: true });
    return Promise.resolve({ value: void 0, done: true });
  }
  [Symbol.asyncIterator]() {
    return this;
  }
};

// src/validate.ts
var PROTOCOL_VERSION = 1;
var SUBPROTOCOL = "clipwire.v1";
var MAX_UINT = 2n ** 63n - 1n;
var SIGNALS = /* @__PURE__ */ new Set(["typing"]);
function bad(message, field) {
  return new RequestError("bad_request", message, field);
}
function codePoints(s) {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 55296 && c <= 56319 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 56320 && d <= 57343) {
        n--;
        i++;
      }
    }
  }
  return n;
}
var NOT_PRINTABLE = (() => {
  try {
    return new RegExp("[\\p{C}\\p{Z}]", "u");
  } catch {
    return /[\x00-\x1f\x7f-\xa0\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ue000-\uf8ff\ufeff\ufff9-\ufffb]/;
  }
})();
function isPrintable(s) {
  if (!wellFormed(s)) return false;
  if (!NOT_PRINTABLE.test(s)) return true;
  for (const ch of s) {
    if (ch !== " " && NOT_PRINTABLE.test(ch)) return false;
  }
  return true;
}
function wellFormed(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 55296 && c <= 56319) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 56320 || d > 57343) return false;
      i++;
    } else if (c >= 56320 && c <= 57343) {
      return false;
    }
  }
  return true;
}
function isUint(value) {
  if (typeof value === "number") return Number.isInteger(value) && value >= 0 && value < 2 ** 63;
  if (typeof value === "bigint") return value >= 0n && value <= MAX_UINT;
  return false;
}
function uint(value, name) {
  if (!isUint(value)) throw bad(`'${name}' must be an unsigned integer`, name);
  return value;
}
function ident(value, name, limits) {
  if (typeof value !== "string" || value.length === 0 || codePoints(value) > limits.max_id_chars) {
    throw bad(`'${name}' must be a string of 1 to ${limits.max_id_chars} characters`, name);
  }
  if (!isPrintable(value)) throw bad(`'${name}' must not contain control characters`, name);
  return value;
}
function text(value, name, maxChars) {
  if (typeof value !== "string") throw bad(`'${name}' must be a string`, name);
  if (codePoints(value) > maxChars) throw bad(`'${name}' is longer than ${maxChars} characters`, name);
  if (!wellFormed(value)) throw bad(`'${name}' must be valid Unicode (it holds a lone surrogate)`, name);
  return value;
}
var C0_OR_SPACE = /^[\x00-\x20]+/;
var SCHEME_CHARS = /^[A-Za-z0-9+\-.]*$/;
function splitUrl(url2) {
  let rest = url2.replace(C0_OR_SPACE, "").replace(/[\t\r\n]/g, "");
  let scheme = "";
  let netloc = "";
  const colon = rest.indexOf(":");
  if (colon > 0 && /^[A-Za-z]/.test(rest) && SCHEME_CHARS.test(rest.slice(0, colon))) {
    scheme = rest.slice(0, colon).toLowerCase();
    rest = rest.slice(colon + 1);
  }
  if (rest.startsWith("//")) {
    let end = rest.length;
    for (const c of "/?#") {
      const at = rest.indexOf(c, 2);
      if (at >= 0) end = Math.min(end, at);
    }
    netloc = rest.slice(2, end);
    const open = netloc.includes("[");
    const close = netloc.includes("]");
    if (open !== close) return null;
    if (open && close) {
      const after = netloc.slice(netloc.indexOf("[") + 1);
      const host = after.includes("]") ? after.slice(0, after.indexOf("]")) : after;
      if (!bracketedHostOk(host)) return null;
    }
  }
  if (!netlocOk(netloc)) return null;
  return { scheme, netloc };
}
function bracketedHostOk(host) {
  if (host.startsWith("v")) return /^v[a-fA-F0-9]+\.[\s\S]+$/.test(host);
  if (isIPv4(host)) return false;
  return isIPv6(host);
}
function isIPv4(s) {
  const parts = s.split(".");
  return parts.length === 4 && parts.every((p) => /^[0-9]{1,3}$/.test(p) && Number(p) <= 255 && (p === "0" || p[0] !== "0"));
}
function isIPv6(address) {
  let s = address;
  const pct = s.indexOf("%");
  if (pct >= 0) {
    const scope = s.slice(pct + 1);
    if (!scope || scope.includes("%")) return false;
    s = s.slice(0, pct);
  }
  const parts = s.split(":");
  if (parts.length < 3) return false;
  let maxParts = 8;
  if (parts[parts.length - 1].includes(".")) {
    if (!isIPv4(parts.pop())) return false;
    parts.push("0", "0");
    maxParts = 8;
  }
  if (parts.length > maxParts + 1) return false;
  let skip = null;
  for (let i = 1; i < parts.length - 1; i++) {
    if (parts[i] === "") {
      if (skip !== null) return false;
      skip = i;
    }
  }
  let hextets;
  if (skip !== null) {
    let lead = skip;
    let tail = parts.length - skip - 1;
    if (parts[0] === "") {
      lead--;
      if (lead) return false;
    }
    if (parts[parts.length - 1] === "") {
      tail--;
      if (tail) return false;
    }
    if (lead + tail >= maxParts) return false;
    hextets = [...parts.slice(0, lead), ...parts.slice(parts.length - tail)];
  } else {
    if (parts.length !== maxParts) return false;
    if (parts[0] === "" || parts[parts.length - 1] === "") return false;
    hextets = parts;
  }
  return hextets.every((h) => /^[0-9a-fA-F]{1,4}$/.test(h));
}
function netlocOk(netloc) {
  if (!netloc || /^[\x00-\x7f]*$/.test(netloc) || typeof netloc.normalize !== "function") return true;
  const n = netloc.replace(/[@:#?]/g, "");
  const normal = n.normalize("NFKC");
  if (n === normal) return true;
  return !/[/?#@:]/.test(normal);
}
function url(value, name, limits) {
  const out = text(value, name, limits.max_url_chars);
  const parts = splitUrl(out);
  if (parts === null || parts.scheme !== "https" && parts.scheme !== "http" || !parts.netloc) {
    throw bad(`'${name}' must be an http or https URL`, name);
  }
  return out;
}
var Fields = class {
  constructor(frame, limits) {
    this.frame = frame;
    this.limits = limits;
  }
  get(name) {
    return Object.prototype.hasOwnProperty.call(this.frame, name) ? this.frame[name] : void 0;
  }
  /** `nil means absent`: null and undefined both count as missing. */
  opt(name) {
    const value = this.get(name);
    return value === null ? void 0 : value;
  }
  ident(name) {
    const value = this.opt(name);
    if (value === void 0) throw bad(`missing '${name}'`, name);
    return ident(value, name, this.limits);
  }
  optIdent(name) {
    const value = this.opt(name);
    return value === void 0 ? null : ident(value, name, this.limits);
  }
  idents(name, required = true, maxItems) {
    const value = this.opt(name);
    if (value === void 0) {
      if (required) throw bad(`missing '${name}'`, name);
      return [];
    }
    if (!Array.isArray(value)) throw bad(`'${name}' must be an array of strings`, name);
    const bound = maxItems ?? this.limits.max_array_len;
    if (value.length > bound) throw bad(`'${name}' has more than ${bound} entries`, name);
    const out = [];
    const seen = /* @__PURE__ */ new Set();
    for (const item of value) {
      const id = ident(item, `${name}[]`, this.limits);
      if (!seen.has(id)) {
        seen.add(id);
        out.push(id);
      }
    }
    return out;
  }
  text(name, maxChars, required = false) {
    const value = this.opt(name);
    if (value === void 0) {
      if (required) throw bad(`missing '${name}'`, name);
      return null;
    }
    return text(value, name, maxChars);
  }
  uint(name) {
    const value = this.opt(name);
    if (value === void 0) throw bad(`missing '${name}'`, name);
    return uint(value, name);
  }
  optUint(name) {
    const value = this.opt(name);
    return value === void 0 ? null : uint(value, name);
  }
  boolean(name) {
    const value = this.get(name);
    if (typeof value !== "boolean") throw bad(`'${name}' must be true or false`, name);
    return value;
  }
};
function requestId(frame) {
  const value = frame["id"];
  return isUint(value) ? value : null;
}
function validateVideoCard(value, limits = DEFAULT_LIMITS, name = "video") {
  if (!isPlainMap(value)) throw bad(`'${name}' must be a map`, name);
  const get = (key) => {
    const item = Object.prototype.hasOwnProperty.call(value, key) ? value[key] : void 0;
    return item === null ? void 0 : item;
  };
  const opt = (key, check) => {
    const item = get(key);
    return item === void 0 ? null : check(item, `${name}.${key}`);
  };
  if (get("id") === void 0) throw bad(`missing '${name}.id'`, `${name}.id`);
  const card = {
    id: ident(get("id"), `${name}.id`, limits),
    url: url(value["url"], `${name}.url`, limits),
    thumb: opt("thumb", (v, n) => url(v, n, limits)),
    caption: opt("caption", (v, n) => text(v, n, limits.max_text_chars)),
    author: opt("author", (v, n) => ident(v, n, limits)),
    duration_ms: opt("duration_ms", uint),
    at_ms: opt("at_ms", uint)
  };
  if (card.at_ms !== null && card.duration_ms !== null && card.at_ms > card.duration_ms) {
    throw bad(`'${name}.at_ms' lies beyond '${name}.duration_ms'`, `${name}.at_ms`);
  }
  return card;
}
function reply(value) {
  if (value === null || value === void 0) return null;
  if (!isPlainMap(value)) throw bad("'reply' must be a map {seq, at_ms?}", "reply");
  const seq = uint(value["seq"], "reply.seq");
  const atMs = value["at_ms"];
  return { seq, at_ms: atMs === null || atMs === void 0 ? null : uint(atMs, "reply.at_ms") };
}
function validateHello(frame, limits = DEFAULT_LIMITS) {
  const f = new Fields(frame, limits);
  const token = f.get("token");
  if (typeof token !== "string" || token.length === 0) {
    throw new RequestError("unauthorized", "missing 'token'", "token");
  }
  let resumeValue = f.get("resume");
  if (resumeValue === null || resumeValue === void 0) resumeValue = {};
  if (!isPlainMap(resumeValue)) throw bad("'resume' must be a map of conversation to seq", "resume");
  const resume = {};
  for (const conv of Object.keys(resumeValue)) {
    ident(conv, "resume key", limits);
    const seq = uint(resumeValue[conv], `resume[${conv}]`);
    Object.defineProperty(resume, conv, { value: seq, enumerable: true, configurable: true, writable: true });
  }
  if (!wellFormed(token)) throw bad("'token' must be valid Unicode (it holds a lone surrogate)", "token");
  return { type: "Hello", id: f.uint("id"), v: f.uint("v"), token, device: f.optIdent("device"), resume };
}
function send(f) {
  const to = f.optIdent("to");
  const conv = f.optIdent("conv");
  if (to === null === (conv === null)) throw bad("give exactly one of 'to' and 'conv'", "to");
  let kind = f.get("kind");
  if (kind === null || kind === void 0) kind = "text";
  const body = f.text("text", f.limits.max_text_chars);
  const videoValue = f.get("video");
  let video = null;
  if (kind === "text") {
    if (!body) throw bad("a text message needs a non-empty 'text'", "text");
    if (videoValue !== null && videoValue !== void 0) {
      throw bad("a text message carries no 'video'; use kind 'video'", "video");
    }
  } else if (kind === "video") {
    if (videoValue === null || videoValue === void 0) throw bad("a video message needs a 'video' card", "video");
    video = validateVideoCard(videoValue, f.limits);
  } else {
    throw bad("'kind' must be 'text' or 'video'", "kind");
  }
  return {
    type: "Send",
    id: f.uint("id"),
    cmid: f.ident("cmid"),
    to,
    conv,
    kind,
    text: body || null,
    video,
    reply: reply(f.get("reply"))
  };
}
function share(f) {
  const bound = f.limits.max_share_targets;
  const to = f.idents("to", false, bound);
  const convs = f.idents("convs", false, bound);
  if (to.length === 0 && convs.length === 0) throw bad("give at least one target in 'to' or 'convs'", "to");
  if (to.length + convs.length > bound) throw bad(`a share reaches at most ${bound} targets`, null);
  const video = f.get("video");
  if (video === null || video === void 0) throw bad("missing 'video'", "video");
  const id = f.uint("id");
  const cmid = f.ident("cmid");
  const card = validateVideoCard(video, f.limits);
  return { type: "Share", id, cmid, video: card, to, convs, text: f.text("text", f.limits.max_text_chars) || null };
}
function history(f) {
  let limit = f.optUint("limit");
  if (limit === null) limit = 50;
  if (!(limit > 0 && limit <= f.limits.max_history_limit)) {
    throw bad(`'limit' must be between 1 and ${f.limits.max_history_limit}`, "limit");
  }
  return { type: "History", id: f.uint("id"), conv: f.ident("conv"), before: f.optUint("before"), limit };
}
function react(f) {
  const emoji = f.text("emoji", f.limits.max_emoji_chars, true) ?? "";
  const visible = emoji.replace(/\u200d/g, "");
  if (!visible || !isPrintable(visible) || /^ +$/.test(visible)) {
    throw bad("'emoji' must be a non-empty printable string", "emoji");
  }
  return {
    type: "React",
    id: f.uint("id"),
    conv: f.ident("conv"),
    seq: f.uint("seq"),
    emoji,
    on: f.boolean("on"),
    at_ms: f.optUint("at_ms")
  };
}
function groupCreate(f) {
  const title = f.text("title", f.limits.max_title_chars) || "";
  return { type: "GroupCreate", id: f.uint("id"), members: f.idents("members", false), title };
}
function ping(f) {
  const id = f.get("id");
  return { type: "Ping", id: id === null || id === void 0 ? null : f.uint("id") };
}
function refresh(f) {
  const token = f.get("token");
  if (typeof token !== "string" || token.length === 0) throw bad("missing 'token'", "token");
  if (!wellFormed(token)) throw bad("'token' must be valid Unicode (it holds a lone surrogate)", "token");
  return { type: "Refresh", id: f.uint("id"), token };
}
var user = (type) => (f) => ({ type, id: f.uint("id"), user: f.ident("user") });
var convSeq = (type) => (f) => ({ type, id: f.uint("id"), conv: f.ident("conv"), seq: f.uint("seq") });
var members = (type) => (f) => ({ type, id: f.uint("id"), conv: f.ident("conv"), members: f.idents("members") });
var PARSERS = {
  send,
  share,
  history,
  read: convSeq("Read"),
  react,
  unsend: convSeq("Unsend"),
  "group.create": groupCreate,
  "group.add": members("GroupAdd"),
  "group.remove": members("GroupRemove"),
  "group.leave": (f) => ({ type: "GroupLeave", id: f.uint("id"), conv: f.ident("conv") }),
  "friend.request": user("FriendRequest"),
  "friend.accept": user("FriendAccept"),
  "friend.remove": user("FriendRemove"),
  block: user("Block"),
  unblock: user("Unblock"),
  presence: (f) => ({ type: "PresenceQuery", id: f.uint("id"), users: f.idents("users") }),
  watch: (f) => ({
    type: "Watch",
    id: f.uint("id"),
    conv: f.ident("conv"),
    video_id: f.ident("video_id"),
    pos_ms: f.uint("pos_ms"),
    playing: f.boolean("playing")
  }),
  refresh,
  ping,
  typing: (f) => ({ type: "Typing", conv: f.ident("conv") }),
  hello: (f) => validateHello(f.frame, f.limits)
};
var REQUEST_TYPES = Object.freeze(Object.keys(PARSERS));
function validateRequest(frame, limits = DEFAULT_LIMITS) {
  const t = frame["t"];
  if (typeof t !== "string") throw bad("frame must carry a string 't'", "t");
  const parser = Object.prototype.hasOwnProperty.call(PARSERS, t) ? PARSERS[t] : void 0;
  if (parser === void 0) throw bad(`unknown request type '${t.slice(0, 40)}'`, null);
  if (!SIGNALS.has(t) && t !== "ping" && requestId(frame) === null) {
    throw bad("a request needs an unsigned integer 'id'", "id");
  }
  return parser(new Fields(frame, limits));
}

// src/client.ts
var RECONNECT_CODES = /* @__PURE__ */ new Set([1001, 1005, 1006, 1011, 1012, 1013, 4002, 4008, 4009, 4010]);
var REPEATABLE = /* @__PURE__ */ new Set([
  "send",
  "share",
  "history",
  "ping",
  "presence",
  "read",
  "react",
  "unsend",
  "group.add",
  "group.remove",
  "friend.request",
  "friend.accept",
  "friend.remove",
  "block",
  "unblock",
  "watch"
]);
var PAUSE_AFTER = { 4008: 5e3 };
var AT_ONCE = /* @__PURE__ */ new Set([4010, 4001]);
var MAX_INCOMING = 16 * 1024 * 1024;
var INCOMING = {
  ...DEFAULT_LIMITS,
  max_frame_bytes: MAX_INCOMING,
  max_depth: 32,
  max_str_len: MAX_INCOMING,
  max_array_len: 1 << 20,
  max_map_len: 1 << 20
};
var OWN_CMIDS_KEPT = 4096;
var MAX_TIMER2 = 2 ** 31 - 1;
var Connection = class {
  constructor(ws, no) {
    this.ws = ws;
    this.no = no;
    this.dead = false;
    this.keepaliveTimer = null;
    this.keepaliveDeadline = null;
    this.keepaliveId = null;
    this.lastHeard = Date.now();
  }
};
function newCmid() {
  const bytes = new Uint8Array(16);
  const c = globalThis.crypto;
  if (c?.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}
function tokenExpiry(token) {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const clean = part.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const bytes = [];
    let bits = 0;
    let acc = 0;
    for (const ch of clean) {
      const v = alphabet.indexOf(ch);
      if (v < 0) return null;
      acc = acc << 6 | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes.push(acc >> bits & 255);
      }
    }
    const claims = JSON.parse(utf8Decode(Uint8Array.from(bytes), 0, bytes.length));
    const exp = isMap(claims) ? claims["exp"] : void 0;
    return typeof exp === "number" && Number.isFinite(exp) ? exp : null;
  } catch {
    return null;
  }
}
function defaultLogger(given) {
  const noop = () => {
  };
  const con = typeof console !== "undefined" ? console : void 0;
  return {
    debug: given?.debug?.bind(given) ?? noop,
    info: given?.info?.bind(given) ?? noop,
    warn: given?.warn?.bind(given) ?? (con ? con.warn.bind(con) : noop),
    error: given?.error?.bind(given) ?? (con ? con.error.bind(con) : noop)
  };
}
function hasToken(options) {
  return options.token !== void 0 || options.tokenProvider !== void 0;
}
var Client = class {
  constructor(url2, options) {
    /** Your user id (the token's `sub`). */
    this.user = "";
    /** The hub's id for the current connection. */
    this.session = "";
    /** The hub's clock at the last welcome (ms). */
    this.serverTime = 0;
    /** The limits the hub announced (defaults until the welcome). */
    this.limits = { ...DEFAULT_LIMITS };
    /** The last welcome, as sent (without `t` and `id`). */
    this.welcome = {};
    /** The subprotocol the hub selected (`clipwire.v1`). */
    this.subprotocol = "";
    this.convs = /* @__PURE__ */ new Map();
    this.friendState = new Friends();
    this.nextId = 1;
    this.calls = /* @__PURE__ */ new Map();
    this.ownCmids = /* @__PURE__ */ new Map();
    this.conn = null;
    this.connNo = 0;
    this.online = false;
    this.onlineWaiters = [];
    this.final = null;
    this.closedByUser = false;
    this.opened = false;
    this.clockOffset = 0;
    this.refreshTimer = null;
    this.sleeping = null;
    this.afterWelcome = [];
    if (!hasToken(options)) throw new TypeError("give a token, a tokenProvider, or both");
    this.url = url2;
    this.device = options.device;
    this.token = options.token;
    this.tokenProvider = options.tokenProvider;
    this.shouldReconnect = options.reconnect ?? true;
    this.initialResume = { ...options.resume ?? {} };
    this.requestTimeoutMs = options.requestTimeoutMs ?? 1e4;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 1e4;
    this.backoff = [options.backoffInitialMs ?? 250, options.backoffMaxMs ?? 1e4];
    this.maxAttempts = options.maxReconnectAttempts ?? null;
    this.backfill = options.newConversationBackfill ?? 100;
    this.keepalive = [
      options.keepaliveIntervalMs === void 0 ? 2e4 : options.keepaliveIntervalMs,
      options.keepaliveTimeoutMs ?? 2e4
    ];
    this.refreshBefore = options.refreshBeforeExpiryMs === void 0 ? 6e4 : options.refreshBeforeExpiryMs;
    this.Impl = options.WebSocketImpl ?? globalThis.WebSocket;
    this.log = defaultLogger(options.logger);
    this.stream = new EventStream(options.maxQueuedEvents ?? 1e3, (error) => this.log.error("an event listener failed", error));
    this.delivery = new Delivery(
      this.stream,
      (conv, first, last) => this.fetch(conv, first, last),
      (msg) => this.isOwn(msg),
      options.maxBufferedMessages ?? 1e3,
      options.holeGraceMs ?? 250,
      this.log
    );
    this.pacer = new Pacer((call) => {
      call.arm();
      if (this.conn !== null) this.writeCall(this.conn, call);
    }, options.maxQueuedRequests ?? 1e4);
  }
  // -- lifecycle -----------------------------------------------------------
  /** Connect and say hello; rejects with Unauthorized, ConnectFailed, ... */
  async open() {
    if (this.final !== null) throw new ClientClosed(this.final.code, this.final.reason);
    if (this.opened) return this;
    this.opened = true;
    if (this.device !== void 0) {
      try {
        validateHello({ t: "hello", id: 1, v: 1, token: "x", device: this.device });
      } catch (error) {
        if (error instanceof RequestError) throw RequestFailed.local(error, "hello");
        throw error;
      }
    }
    try {
      if (this.token === void 0) this.token = await this.tokenProvider();
      try {
        await this.connectOnce(true, 0);
      } catch (error) {
        if (!(error instanceof Unauthorized) || this.tokenProvider === void 0) throw error;
        this.token = await this.tokenProvider();
        await this.connectOnce(true, 0);
      }
    } catch (error) {
      this.opened = false;
      throw error;
    }
    return this;
  }
  /** Close the connection, fail what is still waiting, end iteration. Idempotent. */
  async close() {
    if (this.closedByUser) return;
    this.closedByUser = true;
    this.final ?? (this.final = new ClientClosed(CloseCode.NORMAL, "closed by the client"));
    this.stopTimers();
    this.wakeSleeper();
    const conn = this.conn;
    this.conn = null;
    this.online = false;
    this.wakeOnlineWaiters();
    this.failAll(this.final);
    this.pacer.close();
    this.delivery.stop();
    this.stream.clear();
    this.stream.end(null);
    if (conn !== null) await this.closeSocket(conn, CloseCode.NORMAL, "bye");
  }
  /** True while a connection is up and past its hello. */
  get connected() {
    return this.online;
  }
  /** True once the client is closed (by you, or for good by the hub). */
  get closed() {
    return this.final !== null;
  }
  /** Wait until the client is connected (again); rejects with ClientClosed if it never will. */
  waitConnected(timeoutMs) {
    if (this.online) return Promise.resolve();
    if (this.final !== null) return Promise.reject(new ClientClosed(this.final.code, this.final.reason));
    return new Promise((resolve, reject) => {
      let timer = null;
      const waiter = () => {
        if (timer !== null) clearTimeout(timer);
        if (this.online) resolve();
        else reject(this.final ? new ClientClosed(this.final.code, this.final.reason) : new RequestTimeout("connect", timeoutMs ?? 0));
      };
      this.onlineWaiters.push(waiter);
      if (timeoutMs !== void 0) {
        timer = setTimeout(() => {
          this.onlineWaiters = this.onlineWaiters.filter((w) => w !== waiter);
          reject(new RequestTimeout("connect", timeoutMs));
        }, Math.min(timeoutMs, MAX_TIMER2));
      }
    });
  }
  /** Your conversations (conv id to summary, with read marker and watch state), kept current. */
  get conversations() {
    return this.convs;
  }
  /** Your friends and whether they are online, kept current from events. */
  get friends() {
    return this.friendState.friends;
  }
  /** Pending friend requests: `"in"` from them, `"out"` from you. */
  get friendRequests() {
    return this.friendState.requests;
  }
  /** Per conversation, the highest seq up to which every message was received.
   * Persist it (it stays readable after `close()`) and pass it as
   * `connect(url, {resume})` to pick up where you left off. */
  get resumeState() {
    const out = {};
    for (const [conv, seq] of this.delivery.resumePoints()) setKey(out, conv, seq);
    return out;
  }
  /** Non-message events dropped because the event queue was full. */
  get droppedEvents() {
    return this.stream.dropped;
  }
  /** Messages that arrived again and were not delivered a second time. */
  get duplicatesDropped() {
    return this.delivery.duplicates;
  }
  // -- events --------------------------------------------------------------
  /** An async iterator over the events (each iterator sees every event from now on). */
  events() {
    return this.stream.iterator();
  }
  [Symbol.asyncIterator]() {
    return this.stream.iterator();
  }
  on(type, listener) {
    const call = listener;
    return this.stream.subscribe(type === "*" ? call : (event) => event.type === type ? call(event) : void 0);
  }
  // -- requests ------------------------------------------------------------
  /**
   * Send request `t` with `fields` (wire names; undefined and null are left out) and
   * return the `ok` result without `t`/`id`. Known request types are validated first.
   */
  async request(t, fields = {}, options = {}) {
    if (t === "typing") {
      this.typing(fields["conv"]);
      return {};
    }
    return this.call(t, fields, options.timeoutMs, null);
  }
  /** Send a text message to user `to` (a DM) or to conversation `conv`; returns it as stored. */
  async sendText(text2, target) {
    return this.sendMessage("text", text2, void 0, target);
  }
  /** Send one video card, with an optional note, to `to` or `conv`. */
  async sendVideo(video, target) {
    return this.sendMessage("video", target.text, video, target);
  }
  /** Reply to message `seq` of `conv`; `atMs`: to that moment of its video. */
  async replyTo(conv, seq, text2, options = {}) {
    const reply2 = options.atMs === void 0 ? { seq } : { seq, atMs: options.atMs };
    return this.sendMessage("text", text2, void 0, { conv, reply: reply2, cmid: options.cmid, timeoutMs: options.timeoutMs });
  }
  /** Share a video card with users `to` (DMs) and conversations `convs` at once; one result per target. */
  async shareVideo(video, targets) {
    const to = typeof targets.to === "string" ? [targets.to] : [...targets.to ?? []];
    const convs = typeof targets.convs === "string" ? [targets.convs] : [...targets.convs ?? []];
    const cmid = targets.cmid ?? newCmid();
    this.rememberCmid(cmid);
    const result = await this.call("share", {
      video: cardToWire(video),
      to: to.length ? to : void 0,
      convs: convs.length ? convs : void 0,
      text: targets.text,
      cmid
    }, targets.timeoutMs, (res) => {
      for (const item of arrayOf(res["results"])) {
        if (isMap(item) && typeof item["seq"] === "number" && typeof item["conv"] === "string") this.ownStored(item["conv"], item["seq"]);
      }
    });
    return arrayOf(result["results"]).filter(isMap).map(shareResultFromWire);
  }
  /** Up to `limit` (1..100, default 50) messages of `conv` before seq `before` (the newest
   * page without it), oldest first. A page of long messages may be cut short. */
  async history(conv, options = {}) {
    const result = await this.call("history", { conv, before: options.before, limit: options.limit ?? 50 }, options.timeoutMs, null);
    return arrayOf(result["messages"]).filter(isMap).map(messageFromWire);
  }
  /** Create a group with you as owner; returns its conversation id (already in `conversations`). */
  async createGroup(members2, title = "", options = {}) {
    const others = [...new Set(members2)].filter((m) => m !== this.user);
    const result = await this.call("group.create", { members: others, title }, options.timeoutMs, (res) => {
      const convId = String(res["conv"]);
      if (!this.convs.has(convId)) {
        this.convs.set(convId, conversationFromWire({
          conv: convId,
          kind: "group",
          title,
          members: [this.user, ...others],
          owner: this.user,
          last_seq: 0
        }));
      }
      if (!this.delivery.knows(convId)) this.delivery.track(convId, 0, 0, false);
    });
    return String(result["conv"]);
  }
  async addMembers(conv, members2, options = {}) {
    await this.call("group.add", { conv, members: [...members2] }, options.timeoutMs, null);
  }
  /** Remove members from a group (owner only). */
  async removeMembers(conv, members2, options = {}) {
    await this.call("group.remove", { conv, members: [...members2] }, options.timeoutMs, null);
  }
  async leaveGroup(conv, options = {}) {
    await this.call("group.leave", { conv }, options.timeoutMs, null);
  }
  /** Round trip to the hub; returns its clock (ms). */
  async ping(options = {}) {
    const result = await this.call("ping", {}, options.timeoutMs, null);
    return typeof result["server_time"] === "number" ? result["server_time"] : 0;
  }
  /** Signal that the user is typing in `conv` (no answer; dropped while disconnected). */
  typing(conv) {
    this.checkOutgoing({ t: "typing", conv }, "typing");
    const conn = this.conn;
    if (conn !== null && this.online) this.write(conn, encodeFrame({ t: "typing", conv }, this.limits));
  }
  /** Mark `conv` read up to `seq`; returns the stored marker (it never moves back). */
  async read(conv, seq, options = {}) {
    const result = await this.call("read", { conv, seq }, options.timeoutMs, (res) => {
      if (typeof res["read_seq"] === "number") this.setRead(conv, res["read_seq"]);
    });
    return typeof result["read_seq"] === "number" ? result["read_seq"] : seq;
  }
  /** React to message `seq` with `emoji` (`on: false` takes it back); `atMs` pins it to a
   * moment of a video share. One reaction per emoji and user. */
  async react(conv, seq, emoji, options = {}) {
    const on = options.on ?? true;
    await this.call("react", { conv, seq, emoji, on, at_ms: on ? options.atMs : void 0 }, options.timeoutMs, null);
  }
  /** Take back your own message `seq`: the hub keeps a tombstone; others get an `unsent` event. */
  async unsend(conv, seq, options = {}) {
    await this.call("unsend", { conv, seq }, options.timeoutMs, null);
  }
  /** Ask `user` to be friends (accepts instead, if they asked you first). */
  async friendRequest(user2, options = {}) {
    await this.call("friend.request", { user: user2 }, options.timeoutMs, null);
  }
  /** Accept `user`'s pending request (NotFound if there is none). */
  async acceptFriend(user2, options = {}) {
    await this.call("friend.accept", { user: user2 }, options.timeoutMs, null);
  }
  /** End a friendship, or withdraw or decline a pending request, with `user`. */
  async removeFriend(user2, options = {}) {
    await this.call("friend.remove", { user: user2 }, options.timeoutMs, null);
  }
  /** Block `user`: no DMs, presence or typing either way; their group messages reach you as hidden stubs. */
  async block(user2, options = {}) {
    await this.call("block", { user: user2 }, options.timeoutMs, null);
  }
  /** Lift your block on `user` (a friendship it ended stays ended). */
  async unblock(user2, options = {}) {
    await this.call("unblock", { user: user2 }, options.timeoutMs, null);
  }
  /** The presence of `users`, who this connection then watches (`presence` events). Ask again after a reconnect. */
  async presence(users, options = {}) {
    const result = await this.call("presence", { users: [...users] }, options.timeoutMs, null);
    const states = arrayOf(result["users"]).filter(isMap).map(presenceFromWire);
    this.friendState.seen(states);
    return states;
  }
  /** Set `conv`'s watch-together state (last writer wins); returns it as stored. */
  async watch(conv, videoId, posMs, playing, options = {}) {
    const result = await this.call("watch", { conv, video_id: videoId, pos_ms: posMs, playing }, options.timeoutMs, null);
    const state = {
      type: "watch",
      conv,
      by: this.user,
      videoId,
      posMs,
      playing,
      ts: typeof result["ts"] === "number" ? result["ts"] : 0
    };
    this.setWatch(state);
    return state;
  }
  /** Swap in a new token (default: one from the tokenProvider) before the current one
   * expires; returns the session's new closing time (ms). Later reconnects use it too. */
  async refresh(token, options = {}) {
    let fresh = token;
    if (fresh === void 0) {
      if (this.tokenProvider === void 0) throw new TypeError("refresh() needs a token or a tokenProvider");
      fresh = await this.tokenProvider();
    }
    const result = await this.call("refresh", { token: fresh }, options.timeoutMs, null);
    this.token = fresh;
    this.scheduleRefresh();
    return typeof result["expires_at"] === "number" ? result["expires_at"] : 0;
  }
  // -- request machinery ---------------------------------------------------
  async sendMessage(kind, text2, video, target) {
    const reply2 = typeof target.reply === "number" ? { seq: target.reply } : target.reply;
    const cmid = target.cmid ?? newCmid();
    this.rememberCmid(cmid);
    const result = await this.call("send", {
      to: target.to,
      conv: target.conv,
      kind,
      text: text2,
      video: video === void 0 ? void 0 : cardToWire(video),
      reply: reply2 === void 0 ? void 0 : replyToWire(reply2),
      cmid
    }, target.timeoutMs, (res) => this.ownStored(String(res["conv"]), Number(res["seq"])));
    const msg = {
      type: "message",
      conv: String(result["conv"]),
      seq: Number(result["seq"]),
      sender: this.user,
      ts: typeof result["ts"] === "number" ? result["ts"] : 0,
      kind,
      cmid,
      unsent: false,
      hidden: false,
      reactions: []
    };
    if (text2 !== void 0 && text2 !== "") msg.text = text2;
    const card = video === void 0 ? void 0 : cardFromWire(cardToWire(video));
    if (card !== void 0) msg.video = card;
    if (reply2 !== void 0) msg.reply = reply2;
    return msg;
  }
  /** Validate and encode `frame` as the hub would read it; throw the RequestFailed it would answer. */
  checkOutgoing(frame, t) {
    try {
      if (REQUEST_TYPES.includes(t)) validateRequest(frame, this.limits);
      return encodeFrame(frame, this.limits);
    } catch (error) {
      if (error instanceof RequestError) throw RequestFailed.local(error, t);
      if (error instanceof FrameTooLarge) {
        const failed = new TooLarge("too_large", `${error.reason}; the hub takes at most ${this.limits.max_frame_bytes}`, t);
        failed.local = true;
        throw failed;
      }
      if (error instanceof FrameError) {
        const failed = new BadRequest("bad_request", error.reason, t);
        failed.local = true;
        throw failed;
      }
      throw error;
    }
  }
  call(t, fields, timeoutMs, onOk) {
    if (this.final !== null) return Promise.reject(new ClientClosed(this.final.code, this.final.reason));
    if (t === "hello") return Promise.reject(new TypeError("the client says hello itself"));
    const id = this.nextId++;
    const frame = { t, id };
    for (const key of Object.keys(fields)) {
      const value = fields[key];
      if (value !== void 0 && value !== null && key !== "t" && key !== "id") setKey(frame, key, value);
    }
    let data;
    let paced;
    try {
      data = this.checkOutgoing(frame, t);
      paced = this.pace(t, frame);
    } catch (error) {
      return Promise.reject(error);
    }
    const ms = timeoutMs ?? this.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      let timer = null;
      let leftMs = ms;
      let armedAt = null;
      const finish = () => {
        call.done = true;
        if (timer !== null) clearTimeout(timer);
        this.calls.delete(id);
        if (call.kind) this.pacer.answered(call);
      };
      const call = {
        id,
        t,
        data,
        repeatable: REPEATABLE.has(t),
        onOk,
        sentOn: null,
        done: false,
        ...paced,
        arm: () => {
          if (call.done || armedAt !== null) return;
          armedAt = Date.now();
          timer = setTimeout(() => {
            if (call.done) return;
            finish();
            reject(new RequestTimeout(t, ms));
          }, Math.min(Math.max(0, leftMs), MAX_TIMER2));
        },
        disarm: () => {
          if (armedAt === null) return;
          leftMs -= Date.now() - armedAt;
          armedAt = null;
          if (timer !== null) clearTimeout(timer);
          timer = null;
        },
        resolve: (result) => {
          finish();
          resolve(result);
        },
        reject: (error) => {
          finish();
          reject(error);
        }
      };
      this.calls.set(id, call);
      if (call.kind) {
        this.pacer.enqueue(call);
      } else {
        call.arm();
        if (this.online && this.conn !== null) this.writeCall(this.conn, call);
      }
    });
  }
  /** The rate-limit kind, cost and ordering keys of a request; refuse it at once if the queue is full. */
  pace(t, frame) {
    const kind = KIND_OF[t];
    if (kind === void 0) return { kind: "", cost: 0, keys: [] };
    const keys = [];
    if (t === "send" || t === "share") {
      for (const user2 of listed(frame["to"])) keys.push(this.dmKey(user2));
      keys.push(...listed(frame["conv"]), ...listed(frame["convs"]));
    }
    const cost = t === "share" ? shareCost(listed(frame["to"]), listed(frame["convs"])) : 1;
    if (this.pacer.full) {
      const failed = new RateLimited("rate_limited", `${this.pacer.maxQueued} requests already wait for the hub's rate limits (maxQueuedRequests)`, t);
      failed.local = true;
      throw failed;
    }
    return { kind, cost, keys };
  }
  /** The ordering key of a DM by user: its conversation id once known. */
  dmKey(user2) {
    for (const conv of this.convs.values()) if (conv.peer === user2) return conv.conv;
    return `@${user2}`;
  }
  writeCall(conn, call) {
    if (call.done || conn.dead) return;
    call.sentOn = conn.no;
    this.write(conn, call.data);
  }
  write(conn, data) {
    try {
      conn.ws.send(data.slice().buffer);
    } catch (error) {
      this.log.debug("write failed; the close handler repeats or fails the call", error);
    }
  }
  rememberCmid(cmid) {
    this.ownCmids.delete(cmid);
    this.ownCmids.set(cmid, true);
    while (this.ownCmids.size > OWN_CMIDS_KEPT) this.ownCmids.delete(this.ownCmids.keys().next().value);
  }
  /** A message this client sent itself (its caller got it as the send's result). */
  isOwn(msg) {
    return msg.sender === this.user && this.ownCmids.has(msg.cmid);
  }
  ownStored(conv, seq) {
    this.seenSeq(conv, seq);
    this.delivery.onOwn(conv, seq);
  }
  failAll(error) {
    for (const call of [...this.calls.values()]) call.reject(new ClientClosed(error.code, error.reason));
    this.calls.clear();
  }
  /** Messages `first..last` of `conv` (at most one page), for hole filling. The hub may
   * cut a page of long messages short, keeping the newest: ask again below what came. */
  async fetch(conv, first, last) {
    await this.waitConnected();
    const got = [];
    let before = last + 1;
    while (before > first) {
      const page = await this.history(conv, { before, limit: before - first });
      if (page.length === 0) break;
      got.unshift(...page);
      before = page[0].seq;
    }
    return got;
  }
  // -- connections ---------------------------------------------------------
  /** Open a WebSocket, say hello, apply the welcome and go online. */
  async connectOnce(initial, attempts) {
    const Impl = this.Impl;
    if (Impl === void 0) {
      throw new ConnectFailed("no WebSocket implementation: pass connect(url, {WebSocketImpl}) (on Node 20, the ws package)");
    }
    let ws;
    try {
      ws = new Impl(this.url, [SUBPROTOCOL]);
      ws.binaryType = "arraybuffer";
    } catch (error) {
      throw new ConnectFailed(`cannot connect to ${this.url}: ${String(error)}`);
    }
    const conn = new Connection(ws, ++this.connNo);
    const resume = this.resumeForHello(initial);
    const helloId = this.nextId++;
    const hello = { t: "hello", id: helloId, v: PROTOCOL_VERSION, token: this.token ?? "" };
    if (this.device !== void 0) hello["device"] = this.device;
    if (Object.keys(resume).length > 0) hello["resume"] = resume;
    let helloBytes;
    try {
      validateHello(hello);
      helloBytes = encodeFrame(hello);
    } catch (error) {
      this.detach(ws);
      try {
        ws.close();
      } catch {
      }
      if (error instanceof RequestError) throw RequestFailed.local(error, "hello");
      if (error instanceof FrameError) throw new ConnectFailed(`cannot say hello: ${error.reason}`);
      throw error;
    }
    await new Promise((resolve, reject) => {
      let opened = false;
      let settled = false;
      const fail = (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        conn.dead = true;
        this.detach(ws);
        try {
          ws.close();
        } catch {
        }
        reject(error);
      };
      const timer = setTimeout(() => {
        fail(new ConnectFailed(opened ? `no welcome from ${this.url} in ${this.connectTimeoutMs} ms` : `cannot connect to ${this.url}: no answer in ${this.connectTimeoutMs} ms`));
      }, Math.min(this.connectTimeoutMs, MAX_TIMER2));
      ws.onopen = () => {
        opened = true;
        this.write(conn, helloBytes);
      };
      ws.onerror = () => {
      };
      ws.onclose = (event) => {
        const code = event?.code ?? 1006;
        fail(new ConnectFailed(opened ? `${this.url} closed the connection during hello (${code}${event?.reason ? ` ${event.reason}` : ""})` : `cannot connect to ${this.url} (${code})`));
      };
      ws.onmessage = (event) => {
        if (settled) return;
        const frame = this.readFrame(event.data);
        if (frame === null || frame.t !== "ok" && frame.t !== "error" || frame["id"] !== helloId) return;
        if (frame.t === "error") {
          fail(RequestFailed.fromWire(frame["code"], frame["message"], "hello"));
          return;
        }
        settled = true;
        clearTimeout(timer);
        this.subprotocol = ws.protocol ?? "";
        this.applyWelcome(frame, resume, initial);
        ws.onmessage = (ev) => this.onData(conn, ev.data);
        ws.onclose = (ev) => this.onClosed(conn, ev?.code ?? 1006, ev?.reason ?? "");
        this.goOnline(conn);
        if (!initial) {
          this.stream.emit({ type: "reconnected", session: this.session, attempts });
          for (const change of this.afterWelcome) this.stream.emit(change);
        }
        this.afterWelcome = [];
        resolve();
      };
    });
  }
  detach(ws) {
    ws.onopen = ws.onmessage = ws.onerror = null;
    ws.onclose = null;
  }
  closeSocket(conn, code, reason) {
    conn.dead = true;
    this.stopKeepalive(conn);
    return new Promise((resolve) => {
      const timer = setTimeout(done, 1e3);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      conn.ws.onmessage = conn.ws.onerror = null;
      conn.ws.onclose = done;
      try {
        conn.ws.close(code, reason);
      } catch {
        done();
      }
    });
  }
  /** Decode one incoming message; null (and a warning) if it is not a frame. */
  readFrame(data) {
    if (typeof data === "string") {
      this.log.warn("ignored a text frame from the hub");
      return null;
    }
    try {
      return decodeFrame(data, INCOMING);
    } catch (error) {
      this.log.warn(`ignored an unreadable frame from the hub: ${String(error)}`);
      return null;
    }
  }
  onData(conn, data) {
    if (conn.dead) return;
    conn.lastHeard = Date.now();
    const frame = this.readFrame(data);
    if (frame === null) return;
    try {
      this.dispatch(conn, frame);
    } catch (error) {
      this.log.error(`failed to handle a '${frame.t}' frame`, error);
    }
  }
  goOnline(conn) {
    this.conn = conn;
    const waiting = [...this.calls.values()].filter((c) => c.sentOn === null && !c.kind && !c.done).sort((a, b) => a.id - b.id);
    for (const call of waiting) this.writeCall(conn, call);
    this.online = true;
    this.pacer.online(isMap(this.welcome["limits"]) ? this.welcome["limits"] : {});
    this.wakeOnlineWaiters();
    this.startKeepalive(conn);
    this.scheduleRefresh();
  }
  goOffline(code, reason) {
    this.online = false;
    this.conn = null;
    const overflow = code === CloseCode.SLOW_CONSUMER;
    if (overflow) {
      this.delivery.page = Math.max(5, Math.floor(this.delivery.page / 2));
    }
    this.pacer.offline();
    for (const call of [...this.calls.values()]) {
      if (call.sentOn === null || call.done) continue;
      if (call.repeatable && !(overflow && call.t === "history")) call.sentOn = null;
      else call.reject(new ConnectionLost(call.t, code, reason));
    }
  }
  wakeOnlineWaiters() {
    const waiters = this.onlineWaiters;
    this.onlineWaiters = [];
    for (const w of waiters) w();
  }
  onClosed(conn, code, reason) {
    if (conn.dead || conn !== this.conn) return;
    conn.dead = true;
    this.detach(conn.ws);
    this.stopKeepalive(conn);
    void this.afterClose(code, reason).catch((error) => {
      this.log.error("client connection loop failed", error);
      this.finish(CloseCode.INTERNAL, `client error: ${String(error)}`);
    });
  }
  async afterClose(code, reason) {
    this.goOffline(code, reason);
    if (this.closedByUser) return;
    const willRetry = this.shouldReconnect && (RECONNECT_CODES.has(code) || code === CloseCode.UNAUTHORIZED && this.tokenProvider !== void 0);
    this.log.info(`connection closed (${code} ${reason})${willRetry ? "; reconnecting" : ""}`);
    if (!willRetry) {
      this.finish(code, reason);
      return;
    }
    this.stream.emit({ type: "disconnected", code, reason, reconnecting: true });
    await this.reconnectAfter(code, reason);
  }
  delay(attempt, code) {
    const [initial, ceiling] = this.backoff;
    let delay;
    if (attempt === 1 && AT_ONCE.has(code)) {
      delay = Math.random() * initial;
    } else {
      const step = Math.min(ceiling, initial * 2 ** (attempt - 1));
      delay = step / 2 + Math.random() * (step / 2);
    }
    return Math.max(delay, PAUSE_AFTER[code] ?? 0);
  }
  pause(ms) {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleeping = null;
        resolve();
      };
      const timer = setTimeout(wake, Math.min(ms, MAX_TIMER2));
      this.sleeping = { timer, wake };
    });
  }
  wakeSleeper() {
    this.sleeping?.wake();
  }
  async reconnectAfter(code, reason) {
    let needToken = code === CloseCode.UNAUTHORIZED;
    let fresh = false;
    let atOnce = false;
    let attempt = 0;
    for (; ; ) {
      attempt++;
      if (this.maxAttempts !== null && attempt > this.maxAttempts) {
        this.finish(code, `gave up reconnecting after ${this.maxAttempts} attempts (${reason})`);
        return;
      }
      if (!atOnce) await this.pause(this.delay(attempt, code));
      atOnce = false;
      if (this.closedByUser) return;
      try {
        if (needToken) {
          this.token = await this.tokenProvider();
          needToken = false;
          fresh = true;
        }
        if (this.closedByUser) return;
        await this.connectOnce(false, attempt);
        if (this.closedByUser) {
          const conn = this.conn;
          this.conn = null;
          this.online = false;
          if (conn !== null) void this.closeSocket(conn, CloseCode.NORMAL, "bye");
        }
        return;
      } catch (error) {
        if (this.closedByUser) return;
        if (error instanceof Unauthorized) {
          if (this.tokenProvider === void 0) {
            this.finish(CloseCode.UNAUTHORIZED, error.reason);
            return;
          }
          needToken = true;
          atOnce = !fresh;
          this.log.info(`hello refused (${error.reason}); getting a new token`);
        } else if (error instanceof RequestFailed) {
          this.finish(CloseCode.PROTOCOL_ERROR, error.message);
          return;
        } else {
          this.log.info(`reconnect attempt ${attempt} failed: ${String(error)}`);
        }
      }
    }
  }
  /** Closed for good (not by the user): fail waiting requests, end iteration. */
  finish(code, reason) {
    this.online = false;
    this.conn = null;
    this.final ?? (this.final = new ClientClosed(code, reason));
    this.stopTimers();
    this.failAll(this.final);
    this.wakeOnlineWaiters();
    this.stream.emit({ type: "disconnected", code, reason, reconnecting: false });
    this.stream.end(this.final);
    this.delivery.stop();
  }
  stopTimers() {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.conn !== null) this.stopKeepalive(this.conn);
  }
  // -- keepalive and token refresh -----------------------------------------
  startKeepalive(conn) {
    const [interval] = this.keepalive;
    if (interval === null || interval <= 0) return;
    conn.lastHeard = Date.now();
    const tick = () => {
      if (conn.dead) return;
      const idle = Date.now() - conn.lastHeard;
      if (idle < interval || conn.keepaliveId !== null) {
        conn.keepaliveTimer = setTimeout(tick, Math.max(50, interval - idle));
        return;
      }
      const id = this.nextId++;
      conn.keepaliveId = id;
      this.write(conn, encodeFrame({ t: "ping", id }));
      conn.keepaliveDeadline = setTimeout(() => {
        if (conn.dead || conn.keepaliveId !== id) return;
        this.log.info("keepalive: no answer from the hub; reconnecting");
        this.abandon(conn, 1006, "keepalive timed out");
      }, this.keepalive[1]);
      conn.keepaliveTimer = setTimeout(tick, interval);
    };
    conn.keepaliveTimer = setTimeout(tick, interval);
  }
  stopKeepalive(conn) {
    if (conn.keepaliveTimer !== null) clearTimeout(conn.keepaliveTimer);
    if (conn.keepaliveDeadline !== null) clearTimeout(conn.keepaliveDeadline);
    conn.keepaliveTimer = conn.keepaliveDeadline = null;
  }
  /** Give up on a connection that went silent: close it and carry on as after a drop. */
  abandon(conn, code, reason) {
    if (conn.dead || conn !== this.conn) return;
    this.onClosed(conn, code, reason);
    try {
      conn.ws.close(CloseCode.NORMAL, reason);
    } catch {
    }
  }
  scheduleRefresh() {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.tokenProvider === void 0 || this.refreshBefore === null || this.final !== null || this.token === void 0) return;
    const exp = tokenExpiry(this.token);
    if (exp === null) return;
    const serverNow = Date.now() + this.clockOffset;
    const delay = Math.max(1e3, exp * 1e3 - serverNow - this.refreshBefore);
    this.refreshTimer = delay > MAX_TIMER2 ? setTimeout(() => this.scheduleRefresh(), MAX_TIMER2) : setTimeout(() => void this.autoRefresh(), delay);
  }
  async autoRefresh() {
    this.refreshTimer = null;
    if (this.final !== null || !this.online || this.tokenProvider === void 0) return;
    const oldExp = tokenExpiry(this.token ?? "") ?? 0;
    try {
      const token = await this.tokenProvider();
      const exp = tokenExpiry(token);
      if (exp === null || exp <= oldExp) {
        this.log.warn("tokenProvider returned no newer token; the session will end at the token's expiry and reconnect");
        return;
      }
      await this.refresh(token);
    } catch (error) {
      this.log.warn(`refreshing the token failed: ${String(error)}`);
      if (this.final === null && this.refreshTimer === null) {
        this.refreshTimer = setTimeout(() => void this.autoRefresh(), 1e4);
      }
    }
  }
  // -- hello and welcome ---------------------------------------------------
  /** The `resume` map: conversations known to be behind first, within the hub's bounds. */
  resumeForHello(initial) {
    const points = initial ? Object.keys(this.initialResume).map((c) => [c, this.initialResume[c], true]) : this.delivery.resumePoints();
    const sorted = [...points.filter((p) => p[2]), ...points.filter((p) => !p[2])];
    const maxEntries = Math.max(1, this.limits.max_map_len - 8);
    let budget = Math.floor(this.limits.max_frame_bytes / 2);
    const out = {};
    let count = 0;
    for (const [conv, seq] of sorted) {
      try {
        validateHello({ t: "hello", id: 1, v: 1, token: "x", resume: { [conv]: seq } });
      } catch {
        this.log.warn(`resume: skipped an invalid entry ${JSON.stringify(conv)}`);
        continue;
      }
      budget -= utf8Length(conv) + 12;
      if (count >= maxEntries || budget < 0) break;
      setKey(out, conv, seq);
      count++;
    }
    return out;
  }
  applyWelcome(frame, resumed, initial) {
    this.afterWelcome = [];
    const welcome = {};
    for (const key of Object.keys(frame)) if (key !== "t" && key !== "id") setKey(welcome, key, frame[key]);
    this.welcome = welcome;
    this.user = String(frame["user"] ?? "");
    this.session = String(frame["session"] ?? "");
    this.serverTime = typeof frame["server_time"] === "number" ? frame["server_time"] : 0;
    if (this.serverTime) this.clockOffset = this.serverTime - Date.now();
    this.limits = limitsFrom(isMap(frame["limits"]) ? frame["limits"] : null);
    this.delivery.page = Math.max(1, Math.min(this.delivery.page, this.limits.max_history_limit));
    const changed = this.friendState.load(frame);
    if (!initial) this.afterWelcome.push(...changed);
    const listed2 = /* @__PURE__ */ new Map();
    for (const item of arrayOf(frame["convs"])) {
      if (isMap(item) && typeof item["conv"] === "string") listed2.set(item["conv"], conversationFromWire(item));
    }
    const has = (conv) => Object.prototype.hasOwnProperty.call(resumed, conv);
    for (const [convId, conv] of listed2) {
      if (initial) {
        const given = Object.prototype.hasOwnProperty.call(this.initialResume, convId) ? this.initialResume[convId] : conv.lastSeq;
        this.delivery.track(convId, Math.min(given, conv.lastSeq), conv.lastSeq, !has(convId));
      } else if (this.delivery.knows(convId)) {
        this.delivery.raiseWant(convId, conv.lastSeq, !has(convId));
      } else {
        this.delivery.track(convId, Math.max(0, conv.lastSeq - this.backfill), conv.lastSeq, true);
        this.afterWelcome.push({ type: "conversation", conv: convId, conversation: conv, removed: false });
      }
      const oldWatch = !initial ? this.convs.get(convId)?.watch : void 0;
      if (!initial && conv.watch !== void 0 && (oldWatch === void 0 || conv.watch.ts > oldWatch.ts)) {
        this.afterWelcome.push(conv.watch);
      }
    }
    if (!initial) {
      for (const [convId, old] of this.convs) {
        if (!listed2.has(convId)) {
          this.delivery.forget(convId);
          this.afterWelcome.push({ type: "conversation", conv: convId, conversation: old, removed: true });
        }
      }
    }
    this.convs = listed2;
  }
  // -- incoming frames -----------------------------------------------------
  dispatch(conn, frame) {
    const t = frame.t;
    if (t === "ok" || t === "error") {
      this.answer(conn, frame);
    } else if (t === "msg") {
      const msg = messageFromWire(frame);
      this.seenSeq(msg.conv, msg.seq);
      this.delivery.onMessage(msg);
    } else if (t === "gap") {
      const conv = frame["conv"];
      const fromSeq = frame["from_seq"];
      const toSeq = frame["to_seq"];
      if (typeof conv === "string" && typeof fromSeq === "number" && typeof toSeq === "number") {
        this.seenSeq(conv, toSeq);
        this.delivery.onGap(conv, fromSeq, toSeq);
      }
    } else if (t === "conv") {
      this.onConv(frame);
    } else {
      const typed = eventFromWire(t, frame);
      if (typed === void 0) {
        const data = {};
        for (const key of Object.keys(frame)) if (key !== "t") setKey(data, key, frame[key]);
        this.stream.emit({ type: "unknown", t, data });
      } else {
        this.stream.emit(this.onSocial(typed));
      }
    }
  }
  answer(conn, frame) {
    const rid = frame["id"];
    if (rid === void 0 || rid === null) {
      this.log.warn(`the hub refused a frame: ${String(frame["code"])} ${String(frame["message"])}`);
      return;
    }
    if (rid === conn.keepaliveId) {
      conn.keepaliveId = null;
      if (conn.keepaliveDeadline !== null) clearTimeout(conn.keepaliveDeadline);
      conn.keepaliveDeadline = null;
      return;
    }
    const call = typeof rid === "number" ? this.calls.get(rid) : void 0;
    if (call === void 0 || call.done) return;
    if (frame.t === "error" && call.kind && frame["code"] === "rate_limited") {
      const retry = frame["retry_after_ms"];
      this.log.debug(`${call.t} refused for rate; again in ${String(retry)} ms`);
      call.disarm();
      call.sentOn = null;
      this.pacer.refused(call, typeof retry === "number" && retry >= 0 ? retry : null);
      return;
    }
    if (frame.t === "ok") {
      const result = {};
      for (const key of Object.keys(frame)) if (key !== "t" && key !== "id") setKey(result, key, frame[key]);
      if (call.onOk !== null) {
        try {
          call.onOk(result);
        } catch (error) {
          this.log.error(`handling the result of '${call.t}' failed`, error);
        }
      }
      call.resolve(result);
    } else {
      call.reject(RequestFailed.fromWire(frame["code"], frame["message"], call.t, frame["retry_after_ms"]));
    }
  }
  onConv(frame) {
    const convId = frame["conv"];
    if (typeof convId !== "string") return;
    const previous = this.convs.get(convId);
    if (frame["removed"]) {
      this.convs.delete(convId);
      this.delivery.forget(convId);
      const gone = previous ?? conversationFromWire(frame);
      this.stream.emit({ type: "conversation", conv: convId, conversation: gone, removed: true });
      return;
    }
    const conv = conversationFromWire(frame, previous);
    this.convs.set(convId, conv);
    if (this.delivery.knows(convId)) this.delivery.raiseWant(convId, conv.lastSeq);
    else this.delivery.track(convId, conv.lastSeq, conv.lastSeq, false);
    this.stream.emit({ type: "conversation", conv: convId, conversation: conv, removed: false });
  }
  /** Keep the client's state in step with a social event; return what to emit. */
  onSocial(event) {
    if (event.type === "friend" || event.type === "presence") return this.friendState.apply(event);
    if (event.type === "read" && event.user === this.user) this.setRead(event.conv, event.seq);
    else if (event.type === "watch") this.setWatch(event);
    else if (event.type === "unsent") this.delivery.onUnsent(event.conv, event.seq);
    return event;
  }
  setRead(convId, marker) {
    const conv = this.convs.get(convId);
    if (conv === void 0 || marker <= conv.readSeq) return;
    const unread = marker >= conv.lastSeq ? 0 : Math.min(conv.unread, conv.lastSeq - marker);
    this.convs.set(convId, withConversation(conv, { readSeq: marker, unread }));
  }
  setWatch(state) {
    const conv = this.convs.get(state.conv);
    if (conv !== void 0 && (conv.watch === void 0 || state.ts >= conv.watch.ts)) {
      this.convs.set(state.conv, withConversation(conv, { watch: state }));
    }
  }
  seenSeq(convId, seq) {
    const conv = this.convs.get(convId);
    if (conv !== void 0 && seq > conv.lastSeq) this.convs.set(convId, withConversation(conv, { lastSeq: seq }));
  }
};
function arrayOf(value) {
  return Array.isArray(value) ? value : [];
}
function listed(value) {
  if (typeof value === "string") return [value];
  return arrayOf(value).filter((v) => typeof v === "string");
}
function setKey(target, key, value) {
  if (key === "__proto__") Object.defineProperty(target, key, { value, enumerable: true, configurable: true, writable: true });
  else target[key] = value;
}
async function connect(url2, options) {
  return new Client(url2, options).open();
}
export {
  BadRequest,
  Client,
  ClientClosed,
  ClientError,
  ClipwireError,
  CloseCode,
  Conflict,
  ConnectFailed,
  ConnectionLost,
  DEFAULT_LIMITS,
  ERROR_CODES,
  Forbidden,
  FrameError,
  FrameTooLarge,
  HubInternalError,
  MAX_UINT,
  NotFound,
  PROTOCOL_VERSION,
  RECONNECT_CODES,
  REPEATABLE,
  REQUEST_TYPES,
  RateLimited,
  RequestError,
  RequestFailed,
  RequestTimeout,
  SIGNALS,
  SUBPROTOCOL,
  TooLarge,
  Unauthorized,
  Unavailable,
  checkValue,
  codePoints,
  connect,
  decodeFrame,
  decodeValue,
  encodeFrame,
  encodeValue,
  isPrintable,
  limitsFrom,
  newCmid,
  requestId,
  tokenExpiry,
  validateHello,
  validateRequest,
  validateVideoCard
};
