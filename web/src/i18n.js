// The widget's words. A locale is picked from the `locale` option, then
// the project's widget_config, then the browser; English fills any gap.
const STRINGS = {
  en: {
    title: 'Chat',
    open: 'Open chat',
    close: 'Close chat',
    back: 'Back to conversations',
    conversations: 'Conversations',
    empty: 'No conversations yet.',
    support: 'Talk to us',
    placeholder: 'Type a message…',
    send: 'Send',
    attach: 'Attach a file',
    typing: (names) => `${names} ${names.includes(',') ? 'are' : 'is'} typing…`,
    someone: 'Someone',
    reconnecting: 'Connection lost. Reconnecting…',
    connecting: 'Connecting…',
    earlier: 'Load earlier messages',
    edited: 'edited',
    deleted: 'Message deleted',
    edit: 'Edit',
    save: 'Save',
    cancel: 'Cancel',
    remove: 'Delete',
    react: 'React with 👍',
    failed: 'Not sent',
    unread: (n) => `${n} unread`,
    online: 'online',
    offline: 'offline',
    you: 'You',
    messages: 'Messages',
    poweredBy: 'Powered by mqchat',
  },
  fr: {
    title: 'Discussion',
    open: 'Ouvrir la discussion',
    close: 'Fermer la discussion',
    back: 'Retour aux conversations',
    conversations: 'Conversations',
    empty: 'Aucune conversation pour le moment.',
    support: 'Nous écrire',
    placeholder: 'Écrivez un message…',
    send: 'Envoyer',
    attach: 'Joindre un fichier',
    typing: (names) => `${names} ${names.includes(',') ? 'écrivent' : 'écrit'}…`,
    someone: "Quelqu'un",
    reconnecting: 'Connexion perdue. Reconnexion…',
    connecting: 'Connexion…',
    earlier: 'Messages précédents',
    edited: 'modifié',
    deleted: 'Message supprimé',
    edit: 'Modifier',
    save: 'Enregistrer',
    cancel: 'Annuler',
    remove: 'Supprimer',
    react: 'Réagir avec 👍',
    failed: 'Non envoyé',
    unread: (n) => `${n} non lu${n > 1 ? 's' : ''}`,
    online: 'en ligne',
    offline: 'hors ligne',
    you: 'Vous',
    messages: 'Messages',
    poweredBy: 'Propulsé par mqchat',
  },
};

export const LOCALES = Object.keys(STRINGS);

export function strings(...candidates) {
  for (const candidate of candidates) {
    if (!candidate) continue;
    const language = String(candidate).toLowerCase().split('-')[0];
    if (STRINGS[language]) return { ...STRINGS.en, ...STRINGS[language] };
  }
  return STRINGS.en;
}
