// mqchat JavaScript SDK — TypeScript declarations for /sdk/v1.js (global
// `MqChat`) and /sdk/v1.mjs (default export). The server's event names and
// payload types are generated from its event catalogue and the structs it
// serializes (the block below); `ServerEvents` makes tsc refuse an event
// the SDK does not declare.

export type ConnectionState = 'connecting' | 'authenticating' | 'connected' | 'reconnecting' | 'disconnected';
export type ConversationType = 'direct' | 'group' | 'channel' | 'support';

export interface ChatError extends Error {
  /** mqchat's error code (`not_a_member`, `invalid_token`, …) or the SDK's: `network`, `origin_not_allowed`, `auth_required`, `timeout`, `identity_not_verified`. */
  code: string;
}

// The server's types, generated from the structs it serializes (ts-rs) and
// checked by its tests; the SDK's own types below build on them.
// BEGIN generated from the server's event catalogue (bridge/src/events.rs)
export type MessageView = { id: string, conversation_id: string, seq: number, sender: Sender, type: number, content: string, p1: string | null, p2: string | null, p3: string | null, reply_to_message_id: string | null, client_msg_id: string | null, 
/**
 * With URLs signed when the view was made.
 */
attachments: Array<AttachmentView>, 
/**
 * By emoji, in the order first used; empty on a new message.
 */
reactions: Array<ReactionGroup>, edited: boolean, is_deleted: boolean, 
/**
 * Posted by the platform (the site's backend), never by a member.
 */
system: boolean, created_at: string, updated_at: string, };
export type Sender = { id: string, name: string | null, avatar_url: string | null, };
export type AttachmentRef = { id: string, filename: string, content_type: string, size: number, };
export type AttachmentView = { url: string, expires_at: string, id: string, filename: string, content_type: string, size: number, };
export type ReactionGroup = { emoji: string, count: number, user_ids: Array<string>, };
export type Conversation = { id: string, project_id: string, type: ConversationKind, title: string | null, member_ids: Array<string>, admin_ids: Array<string>, archived: boolean, archived_at: string | null, last_seq: number, created_at: string, };
export type ConversationKind = "direct" | "group" | "channel" | "support";
export type Role = "admin" | "member";
export type ConversationSummary = { id: string, type: ConversationKind, title: string | null, archived: boolean, 
/**
 * The listing user's role.
 */
role: Role, member_count: number, 
/**
 * Both members of a direct conversation (so a UI can name the other
 * one); absent for other types, which may have thousands.
 */
member_ids?: Array<string>, last_seq: number, last_read_seq: number, unread: number, last_message: MessageView | null, last_activity_at: string, created_at: string, };
export type ReactionChange = { conversation_id: string, message_id: string, user_id: string, emoji: string, };
export type ReadUpdated = { conversation_id: string, user_id: string, last_read_seq: number, };
export type UnreadChanged = { conversation_id: string, 
/**
 * The read position this count follows from (`unread` = the
 * conversation's last seq − this), so a client can order snapshots.
 */
last_read_seq: number, unread: number, 
/**
 * Across all the user's conversations.
 */
total: number, };
export type MemberJoined = { conversation_id: string, user_id: string, role: Role, };
export type MemberLeft = { conversation_id: string, user_id: string, };
export type ConversationNotice = { conversation: Conversation, };
export type ConversationLeft = { conversation_id: string, };
export type ConversationArchived = { conversation_id: string, archived_at: string | null, };
/** The `data` of each event on the MQTT topics, by its `type`. */
export interface ServerEventPayloads {
  'message.created': MessageView;
  'message.updated': MessageView;
  'message.deleted': MessageView;
  'reaction.added': ReactionChange;
  'reaction.removed': ReactionChange;
  'read.updated': ReadUpdated;
  'member.joined': MemberJoined;
  'member.left': MemberLeft;
  'conversation.created': ConversationNotice;
  'conversation.joined': ConversationNotice;
  'conversation.left': ConversationLeft;
  'conversation.archived': ConversationArchived;
  'unread.changed': UnreadChanged;
  'typing': Typing;
}
export type ServerEventName = keyof ServerEventPayloads;
// END generated

/** A typing indicator, stamped by the gateway (docs/PROTOCOL.md §4). */
export interface Typing {
  conversation_id: string;
  user_id: string;
  name: string | null;
  avatar_url: string | null;
  typing: boolean;
  expires_at: string | null;
}

export type Attachment = AttachmentView;

/** A send this client made that the server has not stored (yet, or at all). */
export interface PendingMessage {
  id: null;
  conversation_id: string;
  sender: Sender;
  content: string;
  attachments: AttachmentView[];
  /** The key of the optimistic copy: the stored message carries the same one. */
  client_msg_id: string;
  created_at: string;
  status: 'pending' | 'failed';
}

/** A message as stored (`status: "sent"` once this client saw it), or an optimistic copy. */
export type Message = (MessageView & { status?: 'sent' }) | PendingMessage;

/** What the client keeps of each conversation: its list entry, or the conversation it joined since. */
export type ConversationEntry = ConversationSummary | (Conversation & { unread: number; last_message?: MessageView | null });

export interface Presence {
  user_id: string;
  status: 'online' | 'offline';
  last_seen_at: string | null;
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

type Payload<K extends ServerEventName> = ServerEventPayloads[K];

/** Every event `on()` delivers, with its payload. */
export interface ChatEvents {
  ready: { user: User; conversations: ConversationEntry[] };
  connection: ConnectionState;
  'auth:required': { reason: string };
  error: ChatError;
  'message.created': Message;
  'message.updated': Payload<'message.updated'>;
  'message.deleted': Payload<'message.deleted'>;
  'message.failed': PendingMessage & { error: ChatError };
  'reaction.added': Payload<'reaction.added'>;
  'reaction.removed': Payload<'reaction.removed'>;
  'read.updated': Payload<'read.updated'>;
  /** After the conversation list is (re)loaded only `total` is new: the others are null. */
  'unread.changed': Payload<'unread.changed'> | { conversation_id: null; unread: null; total: number };
  typing: Payload<'typing'>;
  presence: Presence;
  'member.joined': Payload<'member.joined'>;
  'member.left': Payload<'member.left'>;
  /** The conversation itself (the wire wraps it in `{conversation}`); its topic is subscribed. */
  'conversation.created': Payload<'conversation.created'>['conversation'];
  'conversation.joined': Payload<'conversation.joined'>['conversation'];
  'conversation.left': Payload<'conversation.left'>;
  'conversation.archived': Payload<'conversation.archived'>;
  'session.renewed': { user_id: string; expires_at: number };
  identified: IdentifyResult;
}

/** Every event the server sends has its entry above (tsc checks this line). */
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
  messages: MessageView[];
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
  listConversations(): ConversationEntry[];
  totalUnread(): number;
  createConversation(input: { type: ConversationType; title?: string; member_ids?: string[] }): Promise<Conversation>;
  joinConversation(conversationId: string): Promise<Conversation>;
  leaveConversation(conversationId: string): Promise<{ conversation_id: string; left: boolean }>;
  openSupport(title?: string): Promise<Conversation>;
  sendMessage(conversationId: string, input: string | SendInput): Promise<MessageView & { status: 'sent' }>;
  sendMessageWithAttachments(conversationId: string, content: string, files: Blob[]): Promise<MessageView & { status: 'sent' }>;
  editMessage(messageId: string, content: string): Promise<MessageView>;
  deleteMessage(messageId: string): Promise<MessageView>;
  addReaction(messageId: string, emoji: string): Promise<{ message_id: string; emoji: string; changed: boolean }>;
  removeReaction(messageId: string, emoji: string): Promise<{ message_id: string; emoji: string; changed: boolean }>;
  markRead(conversationId: string, messageIdOrSeq: string | number): Promise<{ conversation_id: string; last_read_seq: number; unread: number; total_unread: number }>;
  /** Call on each keystroke: debounced, stops by itself and on send. */
  typing(conversationId: string): void;
  setTyping(conversationId: string, typing: boolean): void;
  loadHistory(conversationId: string, options?: { beforeSeq?: number; afterSeq?: number; limit?: number }): Promise<HistoryPage>;
  upload(conversationId: string, file: Blob, filename?: string): Promise<AttachmentView>;
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
  sendMessage(conversationId: string, text: string): Promise<MessageView & { status: 'sent' }>;
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
