// mqchat JavaScript SDK — TypeScript declarations for /sdk/v1.js (global
// `MqChat`) and /sdk/v1.mjs (default export). Event payloads follow
// docs/PROTOCOL.md; the server's event names are generated from its event
// catalogue, and `ServerEvents` makes tsc refuse a name without a payload.

export type ConnectionState = 'connecting' | 'authenticating' | 'connected' | 'reconnecting' | 'disconnected';
export type ConversationType = 'direct' | 'group' | 'channel' | 'support';

export interface ChatError extends Error {
  /** mqchat's error code (`not_a_member`, `invalid_token`, …) or the SDK's: `network`, `origin_not_allowed`, `auth_required`, `timeout`, `identity_not_verified`. */
  code: string;
}

export interface Sender {
  id: string;
  name: string | null;
  avatar_url: string | null;
}

export interface Attachment {
  id: string;
  filename: string;
  content_type: string;
  size: number;
  url: string;
  expires_at: string;
}

export interface ReactionGroup {
  emoji: string;
  count: number;
  user_ids: string[];
}

export interface Message {
  /** `null` while an optimistic send is pending. */
  id: string | null;
  conversation_id: string;
  seq?: number;
  sender: Sender;
  /** Seed 002's message types: 0 text, 1 sticker, 2 picture, 3 recording, 4 camera picture, 5 call notice. */
  type?: number;
  content: string;
  p1?: string | null;
  p2?: string | null;
  p3?: string | null;
  reply_to_message_id?: string | null;
  /** Set on every message this SDK sends: key optimistic and stored copies on it. */
  client_msg_id?: string | null;
  attachments: Attachment[];
  reactions?: ReactionGroup[];
  edited?: boolean;
  is_deleted?: boolean;
  system?: boolean;
  created_at: string;
  updated_at?: string;
  /** The SDK's own: `pending` (optimistic), `sent`, `failed`. */
  status?: 'pending' | 'sent' | 'failed';
}

export interface Conversation {
  id: string;
  type: ConversationType;
  title: string | null;
  archived: boolean;
  member_ids?: string[];
  member_count?: number;
  unread: number;
  last_seq?: number;
  last_message?: Message | null;
  last_activity_at?: string;
  created_at: string;
}

export interface Reaction {
  conversation_id: string;
  message_id: string;
  user_id: string;
  emoji: string;
}

export interface Typing {
  conversation_id: string;
  user_id: string;
  name: string | null;
  avatar_url: string | null;
  typing: boolean;
  expires_at: string | null;
}

export interface Presence {
  user_id: string;
  status: 'online' | 'offline';
  last_seen_at: string | null;
}

export interface UnreadChanged {
  /** `null` after the list is (re)loaded: only `total` is new. */
  conversation_id: string | null;
  unread: number | null;
  total: number;
}

export interface User {
  id: string;
  visitor: boolean;
  projectId: string;
}

export interface Identity {
  userId: string;
  name?: string;
  email?: string;
  /** Hex HMAC-SHA256 of `userId` under the project's identity verification secret (computed by the site's backend). */
  userHash?: string;
}

export interface IdentifyResult {
  user_id: string;
  verified: boolean;
}

// BEGIN generated from the server's event catalogue (bridge/src/events.rs)
export type ServerEventName =
  | 'message.created'
  | 'message.updated'
  | 'message.deleted'
  | 'reaction.added'
  | 'reaction.removed'
  | 'read.updated'
  | 'member.joined'
  | 'member.left'
  | 'conversation.created'
  | 'conversation.joined'
  | 'conversation.left'
  | 'conversation.archived'
  | 'unread.changed'
  | 'typing';
// END generated

/** Every event `on()` delivers, with its payload. */
export interface ChatEvents {
  ready: { user: User; conversations: Conversation[] };
  connection: ConnectionState;
  'auth:required': { reason: string };
  error: ChatError;
  'message.created': Message;
  'message.updated': Message;
  'message.deleted': Message & { deleted_by?: string };
  'message.failed': Message & { error: ChatError };
  'reaction.added': Reaction;
  'reaction.removed': Reaction;
  'read.updated': { conversation_id: string; user_id: string; last_read_seq: number };
  'unread.changed': UnreadChanged;
  typing: Typing;
  presence: Presence;
  'member.joined': { conversation_id: string; user_id: string; role: string };
  'member.left': { conversation_id: string; user_id: string };
  'conversation.created': Conversation;
  'conversation.joined': Conversation;
  'conversation.left': { conversation_id: string };
  'conversation.archived': { conversation_id: string; archived_at: string };
  'session.renewed': { user_id: string; expires_at: number };
  identified: IdentifyResult;
}

/** Every event the server sends has its payload above (tsc checks this line). */
export type ServerEvents = { [K in ServerEventName]: ChatEvents[K] };

export interface ClientOptions {
  /** The project's public key (`pk_…`). */
  publicKey: string;
  /** An identity token signed by the site's backend (HS256 with the secret key). */
  token?: string;
  /** Returns a fresh identity token; called whenever the session needs renewing. */
  getToken?: () => Promise<string> | string;
  /** mqchat's HTTP address; defaults to the origin the SDK was loaded from. */
  apiUrl?: string;
  /** For visitors: identify at start (`identify()` later works too). */
  user?: Identity;
  /** Called for each new message from someone else. */
  onMessage?: (message: Message) => void;
}

export interface WidgetOptions extends ClientOptions {
  /** CSS selector or element to render inline into; a floating launcher otherwise. */
  container?: string | HTMLElement;
  /** `en` or `fr`; defaults to the project's widget_config, then the browser's language. */
  locale?: string;
  onReady?: (info: { user: User }) => void;
  onError?: (error: ChatError) => void;
}

export interface HistoryPage {
  conversation_id: string;
  messages: Message[];
  has_more: boolean;
}

export interface SendInput {
  content?: string;
  type?: number;
  p1?: string;
  p2?: string;
  p3?: string;
  reply_to_message_id?: string;
  attachments?: string[];
  client_msg_id?: string;
}

export interface ChatClient {
  readonly state: ConnectionState;
  readonly user: User | null;
  connect(): Promise<void>;
  on<K extends keyof ChatEvents>(event: K, handler: (payload: ChatEvents[K]) => void): () => void;
  off<K extends keyof ChatEvents>(event: K, handler: (payload: ChatEvents[K]) => void): void;
  /** Any command of docs/PROTOCOL.md §5; resolves with its reply's `data`. */
  command(op: string, fields?: Record<string, unknown>): Promise<any>;
  listConversations(): Conversation[];
  totalUnread(): number;
  createConversation(input: { type: ConversationType; title?: string; member_ids?: string[] }): Promise<Conversation>;
  joinConversation(conversationId: string): Promise<Conversation>;
  leaveConversation(conversationId: string): Promise<{ conversation_id: string; left: boolean }>;
  openSupport(title?: string): Promise<Conversation>;
  sendMessage(conversationId: string, input: string | SendInput): Promise<Message>;
  sendMessageWithAttachments(conversationId: string, content: string, files: Blob[]): Promise<Message>;
  editMessage(messageId: string, content: string): Promise<Message>;
  deleteMessage(messageId: string): Promise<Message>;
  addReaction(messageId: string, emoji: string): Promise<{ message_id: string; emoji: string; changed: boolean }>;
  removeReaction(messageId: string, emoji: string): Promise<{ message_id: string; emoji: string; changed: boolean }>;
  markRead(conversationId: string, messageIdOrSeq: string | number): Promise<{ conversation_id: string; last_read_seq: number; unread: number; total_unread: number }>;
  /** Call on each keystroke: debounced, stops by itself and on send. */
  typing(conversationId: string): void;
  setTyping(conversationId: string, typing: boolean): void;
  loadHistory(conversationId: string, options?: { beforeSeq?: number; afterSeq?: number; limit?: number }): Promise<HistoryPage>;
  upload(conversationId: string, file: Blob, filename?: string): Promise<Attachment>;
  getPresence(userId: string): Promise<Presence>;
  watchPresence(userId: string): Promise<void>;
  identify(identity: Identity): Promise<IdentifyResult>;
  destroy(): void;
}

export interface MqChatStatic {
  readonly version: string;
  readonly client: ChatClient | null;
  init(options: WidgetOptions): Promise<void>;
  open(): void;
  close(): void;
  toggle(): void;
  openConversation(conversationId: string): Promise<void>;
  sendMessage(conversationId: string, text: string): Promise<Message>;
  identify(identity: Identity): Promise<IdentifyResult>;
  on<K extends keyof ChatEvents>(event: K, handler: (payload: ChatEvents[K]) => void): () => void;
  destroy(): void;
  createClient(options: ClientOptions): ChatClient;
}

declare const MqChat: MqChatStatic;
export default MqChat;
export declare const createClient: MqChatStatic['createClient'];

declare global {
  interface Window {
    MqChat: MqChatStatic;
    mqchatSettings?: WidgetOptions;
  }
}
