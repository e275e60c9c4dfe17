// The one error type of the SDK: `code` is mqchat's error code (or the
// SDK's own: network, origin_not_allowed, auth_required, timeout, …).
export class ChatError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ChatError';
    this.code = code;
  }
}

export function asChatError(error) {
  if (error instanceof ChatError) return error;
  return new ChatError(error && error.code ? String(error.code) : 'error', (error && error.message) || String(error));
}
