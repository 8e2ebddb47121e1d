// Types for the Switchboard browser SDK (src/switchboard.js).

/** Any JSON value. */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };

export type ClientState = 'disconnected' | 'connecting' | 'connected';
export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed';
export type TransportName = 'websocket' | 'sse';

/** A position in a channel's stream. */
export interface StreamPosition {
  /** Offset of the last publication (grows by one per publication). */
  offset: number;
  /** Incarnation of the stream; a new epoch means history may have been lost. */
  epoch: string;
}

/** A connected client as shown in presence and join/leave events. */
export interface ClientInfo {
  client: string;
  user: string;
  /** The token's `info` claim. */
  info?: JSONValue;
}

/** A publication as returned by `history` and in subscribe replies. */
export interface Publication<T = JSONValue> {
  offset: number;
  data: T;
  /** The publishing client, when a client (not the server API) published. */
  info?: ClientInfo;
}

export interface SwitchboardOptions {
  /** Returns a JWT for `connect`, tickets and `/cmd`. Called on first connect, on an `expiring`
   * push, after a close with 4004 (token expired) and after a 401. */
  getToken?: () => Promise<string>;
  /** A fixed token, when no `getToken` is given. Without either the client connects anonymously. */
  token?: string;
  /** Returns a single-use ticket (as from `POST /auth/ticket`) for pages that hold no token,
   * e.g. behind a cookie session: called before every connection attempt and used as
   * `/ws?ticket=` or `/sse?ticket=`. The session ends at the ticket credentials' expiry (4004)
   * and the client reconnects with a fresh ticket. Commands over the SSE fallback (`/cmd`)
   * still need a token. */
  getTicket?: () => Promise<string>;
  /** Transports to use, in order of preference. Default `['websocket', 'sse']`. */
  transports?: TransportName[];
  /** Log to `console.debug`. */
  debug?: boolean;
  /** Base of the reconnect backoff in ms (default 500). */
  minReconnectDelay?: number;
  /** Cap of the reconnect backoff in ms (default 20000). */
  maxReconnectDelay?: number;
  /** Extra ms after `ping_interval` before a silent WebSocket is treated as dead (default 10000). */
  pingGrace?: number;
  /** Command and handshake timeout in ms (default 10000). */
  timeout?: number;
  /** Shown in debug logs. */
  name?: string;
  /** HTTP base for `/sse`, `/auth/ticket` and `/cmd`; derived from the WebSocket URL by default. */
  httpUrl?: string;
}

export interface ConnectingContext {
  code: number;
  reason: string;
  /** Reconnect attempt number (0 for the first connect). */
  attempt: number;
  /** Milliseconds until the next attempt. */
  delay: number;
}

export interface ConnectedContext {
  client: string | null;
  user: string | null;
  transport: TransportName;
}

export interface DisconnectedContext {
  code: number;
  reason: string;
  /** Whether the client will reconnect by itself. */
  reconnect: boolean;
}

export interface ErrorContext {
  type: 'token' | 'connect' | 'refresh' | 'ticket' | 'protocol';
  error: Error;
}

export interface StateContext<S = ClientState> {
  newState: S;
  oldState: S;
}

export interface TransportContext {
  transport: TransportName;
  reason: string;
}

export interface ClientEvents {
  connecting: ConnectingContext;
  connected: ConnectedContext;
  disconnected: DisconnectedContext;
  error: ErrorContext;
  state: StateContext<ClientState>;
  transport: TransportContext;
}

export interface PublicationContext<T = JSONValue> {
  channel: string;
  offset: number;
  data: T;
  info?: ClientInfo;
}

export interface JoinLeaveContext {
  channel: string;
  client: ClientInfo;
}

export interface ResetContext {
  channel: string;
  /** Where the subscription now stands (the channel's current position, when known). */
  position: StreamPosition | null;
  reason: string;
}

export interface SubscribedContext {
  channel: string;
  position: StreamPosition | null;
  /** True when the subscription resumed from its last position without loss. */
  recovered: boolean;
  transport: TransportName;
  /** True the first time this subscription is subscribed. */
  first: boolean;
}

export interface SubscriptionErrorContext {
  channel: string;
  error: SwitchboardError;
}

export interface SubscriptionEvents<T = JSONValue> {
  publication: PublicationContext<T>;
  join: JoinLeaveContext;
  leave: JoinLeaveContext;
  reset: ResetContext;
  subscribed: SubscribedContext;
  error: SubscriptionErrorContext;
  state: StateContext<SubscriptionState> & { channel: string };
}

export interface SubscribeOptions<T = JSONValue> {
  /** Every publication, in offset order, never twice. */
  onPublication?: (ctx: PublicationContext<T>) => void;
  onJoin?: (ctx: JoinLeaveContext) => void;
  onLeave?: (ctx: JoinLeaveContext) => void;
  /** The node could not resume this channel: reload its state over HTTPS. */
  onReset?: (ctx: ResetContext) => void;
  onSubscribed?: (ctx: SubscribedContext) => void;
  onError?: (ctx: SubscriptionErrorContext) => void;
  /** Resume from a position saved earlier (e.g. across page loads). */
  since?: StreamPosition;
}

export interface HistoryOptions {
  since?: StreamPosition;
  limit?: number;
  reverse?: boolean;
}

export interface HistoryResult<T = JSONValue> {
  publications: Publication<T>[];
  position: StreamPosition;
}

export interface PresenceResult {
  clients: ClientInfo[];
}

/** Error from a command or the connection. `code` is a protocol error code
 * (`permission_denied`, `unrecoverable_position`, ...) or an SDK code (`disconnected`,
 * `timeout`, `network`). */
export class SwitchboardError extends Error {
  constructor(code: string, message?: string, extra?: Record<string, unknown>);
  readonly code: string;
  /** HTTP status, for commands sent over `/cmd`. */
  readonly status?: number;
}

declare class Emitter<Events> {
  on<K extends keyof Events>(event: K, fn: (ctx: Events[K]) => void): this;
  off<K extends keyof Events>(event: K, fn: (ctx: Events[K]) => void): this;
  once<K extends keyof Events>(event: K, fn: (ctx: Events[K]) => void): this;
}

export class Subscription<T = JSONValue> extends Emitter<SubscriptionEvents<T>> {
  readonly client: Switchboard;
  readonly channel: string;
  readonly state: SubscriptionState;
  /** Position of the last publication delivered, or null before the first subscribe reply. */
  readonly position: StreamPosition | null;
  unsubscribe(): void;
  publish(data: unknown): Promise<StreamPosition>;
  history(opts?: HistoryOptions): Promise<HistoryResult<T>>;
  presence(): Promise<PresenceResult>;
}

export class Switchboard extends Emitter<ClientEvents> {
  /** @param url WebSocket endpoint, e.g. `ws://127.0.0.1:8000/ws` (relative and http(s) URLs are
   * converted). `/sse`, `/auth/ticket` and `/cmd` are derived from it. */
  constructor(url: string, opts?: SwitchboardOptions);
  readonly url: string;
  readonly state: ClientState;
  /** The transport in use while connected. */
  readonly transport: TransportName | null;
  /** Session id from the connect reply / SSE welcome. */
  readonly clientId: string | null;
  readonly user: string | null;
  /** When connecting after a failure: the time (ms since epoch) of the next attempt. */
  readonly nextReconnectAt: number | null;
  /** Connects (fetching a fresh token with `getToken`); reconnects by itself until `disconnect()`
   * or a terminal close code. */
  connect(): void;
  /** Closes the connection and stops reconnecting. Subscriptions stay registered and resume on
   * the next `connect()`. */
  disconnect(): void;
  /** Resolves once connected; rejects on a terminal disconnect or after `timeout` ms. */
  ready(timeout?: number): Promise<void>;
  subscribe<T = JSONValue>(channel: string, opts?: SubscribeOptions<T>): Subscription<T>;
  getSubscription(channel: string): Subscription | null;
  subscriptions(): Map<string, Subscription>;
  publish(channel: string, data: unknown): Promise<StreamPosition>;
  history<T = JSONValue>(channel: string, opts?: HistoryOptions): Promise<HistoryResult<T>>;
  presence(channel: string): Promise<PresenceResult>;

  /** Debug hook: the current transport object. */
  readonly _transport: { kind: TransportName; ws?: WebSocket; es?: EventSource | null; connected: boolean } | null;
  /** Debug hook: drops the connection as if the network failed; the client reconnects and resumes. */
  _debugDropConnection(): void;
}

/** Whether a close code is terminal (4500–4999, 1002, 1003, 1007). */
export function isTerminalCode(code: number): boolean;
/** FNV-1a 32-bit hash of a channel name, as used in SSE cursors. */
export function channelHash(name: string): number;
export function encodeCursor(entries: Array<{ channel: string; offset: number; epoch: string }>): string;
export function decodeCursor(cursor: string, channels: string[]): Map<string, StreamPosition> | null;

export default Switchboard;
