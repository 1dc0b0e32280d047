/**
 * clipwire-client: the JavaScript/TypeScript client of the Clipwire hub, for web,
 * React Native and Node apps.
 *
 * ```ts
 * import { connect } from "clipwire-client";
 *
 * const client = await connect("wss://chat.example/ws", { token, tokenProvider: fetchToken });
 * client.on("message", (m) => console.log(m.conv, m.seq, m.sender, m.text ?? m.video?.url));
 * const sent = await client.sendText("hi bob", { to: "bob" });
 * await client.shareVideo({ id: "v1", url: "https://cdn.example/v1.mp4" }, { to: ["bob", "carol"] });
 * const page = await client.history(sent.conv, { before: sent.seq, limit: 20 });
 * await client.react(sent.conv, sent.seq, "🔥");
 * await client.close();
 * ```
 */

export {
  Client,
  REPEATABLE,
  RECONNECT_CODES,
  connect,
  newCmid,
  tokenExpiry,
  type CallOptions,
  type ConnectOptions,
  type SendOptions,
  type Target,
  type TokenProvider,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./client.js";
export {
  DEFAULT_LIMITS,
  FrameError,
  FrameTooLarge,
  checkValue,
  decodeFrame,
  decodeValue,
  encodeFrame,
  encodeValue,
  limitsFrom,
  type Frame,
  type Limits,
} from "./codec.js";
export type { Logger } from "./delivery.js";
export {
  BadRequest,
  ClientClosed,
  ClientError,
  ClipwireError,
  CloseCode,
  Conflict,
  ConnectFailed,
  ConnectionLost,
  ERROR_CODES,
  Forbidden,
  HubInternalError,
  NotFound,
  RateLimited,
  RequestError,
  RequestFailed,
  RequestTimeout,
  TooLarge,
  Unauthorized,
  Unavailable,
  type ErrorCode,
} from "./errors.js";
export type {
  ClientEvent,
  ClientEventType,
  Conversation,
  ConversationChanged,
  Disconnected,
  EventOf,
  FriendEvent,
  FriendRequest,
  Message,
  Presence,
  Reaction,
  ReactionSummary,
  ReadReceipt,
  Reconnected,
  Reply,
  ShareResult,
  Typing,
  UnknownEvent,
  Unsent,
  VideoCard,
  WatchState,
} from "./models.js";
export type { EventIterator } from "./stream.js";
export {
  MAX_UINT,
  PROTOCOL_VERSION,
  REQUEST_TYPES,
  SIGNALS,
  SUBPROTOCOL,
  codePoints,
  isPrintable,
  requestId,
  validateHello,
  validateRequest,
  validateVideoCard,
  type ParsedRequest,
  type ParsedVideoCard,
} from "./validate.js";
