/**
 * The errors of the Clipwire client: one tree, as in the Python SDK.
 *
 * ```
 * ClipwireError                 root of everything this package throws on purpose
 * ├── FrameError                (codec.ts) bytes that are not a readable frame
 * │   └── FrameTooLarge         over max_frame_bytes
 * ├── RequestError              (validate.ts) a request the hub would refuse: code + field
 * └── ClientError               root of what the client throws
 *     ├── RequestFailed         the hub answered {t: "error", code, message}, or the
 *     │   │                     client refused to send the request (local = true)
 *     │   ├── BadRequest        "bad_request"
 *     │   ├── Unauthorized      "unauthorized" (also: hello refused the token)
 *     │   ├── Forbidden         "forbidden"
 *     │   ├── NotFound          "not_found"
 *     │   ├── TooLarge          "too_large" (also: a frame over the hub's limits, not sent)
 *     │   ├── RateLimited       "rate_limited"
 *     │   ├── Conflict          "conflict"
 *     │   ├── Unavailable       "unavailable": retry (a send keeps its cmid)
 *     │   └── HubInternalError  "internal"
 *     ├── RequestTimeout        no answer in time (a send may still have been stored)
 *     ├── ConnectionLost        the connection dropped under a request that is not
 *     │                         safe to repeat: it may or may not have been applied
 *     ├── ConnectFailed         the first connection could not be opened
 *     └── ClientClosed          the client is closed, by you or for good by the hub
 * ```
 */

/** The `code` values of an `error` reply (SPEC.md section 4). */
export const ERROR_CODES = [
  "bad_request",
  "unauthorized",
  "forbidden",
  "not_found",
  "too_large",
  "rate_limited",
  "conflict",
  "unavailable",
  "internal",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** WebSocket close codes the hub uses (SPEC.md section 5). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  UNAUTHORIZED: 4001,
  HELLO_TIMEOUT: 4002,
  PROTOCOL_ERROR: 4003,
  RATE_LIMITED: 4008,
  SLOW_CONSUMER: 4009,
  DRAINING: 4010,
} as const;

/** Root of every error this package throws on purpose. */
export class ClipwireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * A request the hub would refuse, found before sending (`protocol/frames.py`'s
 * `RequestError`). `field` is the field the message names (`"conv"`, `"to[]"`,
 * `"video.url"`), or null when it names none.
 */
export class RequestError extends ClipwireError {
  constructor(readonly code: ErrorCode, message: string, readonly field: string | null) {
    super(`${code}: ${message}`);
    this.reason = message;
  }
  /** The message without the code, as the hub would send it. */
  readonly reason: string;
}

/** Root of what the client throws. */
export class ClientError extends ClipwireError {}

/**
 * The hub answered a request with an `error` frame, or (`local`) the client refused
 * to send a request the hub would refuse. `code` is the wire code; `t` the request type.
 */
export class RequestFailed extends ClientError {
  /** The field at fault, when the client found the problem itself. */
  field: string | null = null;
  /** True when the client refused the request before sending it. */
  local = false;
  /** With `rate_limited`: the hub's `retry_after_ms`, when it says when to try again. */
  retryAfterMs: number | null = null;

  constructor(readonly code: ErrorCode | string, readonly reason: string, readonly t: string | null = null) {
    super(`${t ? `${t}: ` : ""}${code}: ${reason}`);
  }

  /** The most specific error for an `error` frame's `code`. */
  static fromWire(code: unknown, message: unknown, t: string | null = null, retryAfterMs?: unknown): RequestFailed {
    const text = typeof message === "string" ? message : "";
    const raw = typeof code === "string" ? code : "internal";
    const cls = BY_CODE[raw];
    const failed = cls ? new cls(raw, text, t) : new RequestFailed(raw, text, t);
    if (typeof retryAfterMs === "number" && retryAfterMs >= 0) failed.retryAfterMs = retryAfterMs;
    return failed;
  }

  /** A request refused before sending, from the validator's {@link RequestError}. */
  static local(error: RequestError, t: string): RequestFailed {
    const failed = RequestFailed.fromWire(error.code, error.reason, t);
    failed.field = error.field;
    failed.local = true;
    return failed;
  }
}

export class BadRequest extends RequestFailed {}
export class Unauthorized extends RequestFailed {}
export class Forbidden extends RequestFailed {}
export class NotFound extends RequestFailed {}
export class TooLarge extends RequestFailed {}
export class RateLimited extends RequestFailed {}
export class Conflict extends RequestFailed {}
export class Unavailable extends RequestFailed {}
export class HubInternalError extends RequestFailed {}

const BY_CODE: Record<string, new (code: string, reason: string, t: string | null) => RequestFailed> = {
  bad_request: BadRequest,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  not_found: NotFound,
  too_large: TooLarge,
  rate_limited: RateLimited,
  conflict: Conflict,
  unavailable: Unavailable,
  internal: HubInternalError,
};

/**
 * No answer within the request's timeout (time spent reconnecting included). A
 * `send` or `share` that timed out may still be stored: repeat it with the same
 * `cmid` and the hub answers with the first result instead of storing it twice.
 */
export class RequestTimeout extends ClientError {
  constructor(readonly t: string, readonly timeoutMs: number) {
    super(`${t}: no answer within ${timeoutMs} ms`);
  }
}

/**
 * The connection dropped while a request that is unsafe to repeat was in flight
 * (`group.create`, `group.leave`, `refresh`, unknown types): it may or may not
 * have been applied.
 */
export class ConnectionLost extends ClientError {
  constructor(readonly t: string, readonly code: number, readonly reason: string) {
    super(`${t}: connection lost (${code}${reason ? ` ${reason}` : ""}) before the answer; it may or may not have been applied`);
  }
}

/** The first connection (or its hello) failed for a reason other than the hub's answer. */
export class ConnectFailed extends ClientError {}

/** The client is closed: by `close()` (code 1000), or for good by the hub with `code`. */
export class ClientClosed extends ClientError {
  constructor(readonly code: number, readonly reason: string) {
    super(`client closed (${code}${reason ? `: ${reason}` : ""})`);
  }
}
