// The widget's stylesheet, inside its shadow root. Colors and sizes come
// from custom properties set on the host from the project's widget_config.
export const STYLE = `
:host { all: initial; }
:host(.right), :host(.left) { position: fixed; bottom: 20px; z-index: 2147483000; }
:host(.right) { right: 20px; }
:host(.left) { left: 20px; }
:host(.inline) { display: block; width: 100%; height: 100%; }
* { box-sizing: border-box; font-family: var(--mq-font); font-size: var(--mq-font-size); }
.frame { display: flex; flex-direction: column; align-items: flex-end; gap: 12px; color: var(--mq-text); }
.frame.left { align-items: flex-start; }
.frame.inline { height: 100%; }
button { cursor: pointer; font: inherit; color: inherit; }
button:focus-visible, textarea:focus-visible { outline: 3px solid var(--mq-primary); outline-offset: 2px; }
.launcher { position: relative; order: 2; width: var(--mq-launcher); height: var(--mq-launcher); border-radius: 50%; border: none;
  background: var(--mq-primary); color: #fff; box-shadow: 0 6px 20px rgba(0,0,0,.2); display: grid; place-items: center; }
.launcher svg { width: 50%; height: 50%; fill: currentColor; }
.launcher .custom-icon { width: 64%; height: 64%; object-fit: contain; }
.badge { position: absolute; top: -4px; right: -4px; min-width: 20px; height: 20px; padding: 0 6px; border-radius: 10px;
  background: #dc2626; color: #fff; font-size: 12px; line-height: 20px; text-align: center; }
.badge[hidden] { display: none; }
.panel { order: 1; width: 370px; height: min(600px, calc(100vh - 120px)); display: flex; flex-direction: column;
  background: var(--mq-background); border-radius: 14px; box-shadow: 0 10px 40px rgba(0,0,0,.22); overflow: hidden; }
.panel[hidden] { display: none; }
.inline .panel { width: 100%; height: 100%; box-shadow: none; border: 1px solid #e5e7eb; }
header { display: flex; align-items: center; gap: 8px; padding: 12px 14px; background: var(--mq-primary); color: #fff; }
header .heading { flex: 1; min-width: 0; }
h2 { margin: 0; font-size: 1.1em; font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.presence { display: block; font-size: .85em; opacity: .9; }
.presence[hidden] { display: none; }
.presence.online::before { content: "●"; color: #4ade80; margin-right: 4px; }
.presence.offline::before { content: "●"; color: #d1d5db; margin-right: 4px; }
.icon-button { background: transparent; border: none; width: 32px; height: 32px; border-radius: 6px; font-size: 20px; line-height: 1; }
header .icon-button { color: #fff; }
.icon-button[hidden] { display: none; }
.banner { padding: 6px 12px; background: #fef3c7; color: #92400e; font-size: .9em; }
.banner[hidden] { display: none; }
.conversations { list-style: none; margin: 0; padding: 0; overflow-y: auto; flex: 1; }
.conversations[hidden], .thread[hidden], .composer[hidden] { display: none; }
.conversations .empty { padding: 24px; text-align: center; color: #6b7280; }
.conversation { display: grid; grid-template-columns: 1fr auto; width: 100%; text-align: left; padding: 12px 14px; border: none;
  border-bottom: 1px solid #f3f4f6; background: transparent; }
.conversation:hover { background: #f9fafb; }
.conversation .name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.conversation .preview { grid-column: 1; color: #6b7280; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.conversation .count { grid-row: 1 / span 2; grid-column: 2; align-self: center; background: var(--mq-primary); color: #fff;
  border-radius: 10px; padding: 0 8px; font-size: .85em; }
.thread { flex: 1; overflow-y: auto; display: flex; flex-direction: column; padding: 8px 12px; }
.earlier { align-self: center; margin: 4px; background: transparent; border: 1px solid #d1d5db; border-radius: 12px; padding: 2px 10px; }
.earlier[hidden] { display: none; }
.messages { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 8px; }
.message { display: flex; flex-direction: column; max-width: 85%; }
.message.mine { align-self: flex-end; align-items: flex-end; }
.message.theirs { align-self: flex-start; }
.message.system { align-self: center; align-items: center; color: #6b7280; }
.message.pending { opacity: .6; }
.author { font-size: .8em; color: #6b7280; margin: 0 4px 2px; }
.bubble { background: var(--mq-bubble); border-radius: 14px; padding: 8px 12px; overflow-wrap: anywhere; }
.mine .bubble { background: var(--mq-primary); color: #fff; }
.bubble p { margin: 0; white-space: pre-wrap; }
.bubble .image { display: block; max-width: 100%; max-height: 240px; border-radius: 8px; margin-top: 4px; }
.mine .bubble a { color: #fff; }
.meta { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; font-size: .8em; color: #6b7280; margin-top: 2px; }
.meta .failed { color: #dc2626; }
.reaction, .action { border: 1px solid #e5e7eb; background: #fff; border-radius: 10px; padding: 0 6px; font-size: .9em; }
.reaction[aria-pressed="true"] { border-color: var(--mq-primary); }
.action { opacity: .7; }
.typing { min-height: 1.4em; font-size: .85em; color: #6b7280; padding: 4px 2px; }
.composer { display: flex; gap: 6px; align-items: flex-end; padding: 8px; border-top: 1px solid #e5e7eb; }
.composer .icon-button { color: var(--mq-primary); }
textarea { flex: 1; resize: none; border: 1px solid #d1d5db; border-radius: 10px; padding: 8px 10px; max-height: 120px;
  color: var(--mq-text); background: #fff; }
.send { background: var(--mq-primary); color: #fff; border: none; border-radius: 10px; padding: 8px 14px; }
.branding { text-align: center; font-size: .75em; color: #9ca3af; padding: 4px; }
@media (max-width: 480px) {
  :host(.right.open), :host(.left.open) { inset: 0; }
  .frame:not(.inline) .panel { position: fixed; inset: 0; width: 100vw; height: 100dvh; border-radius: 0; }
  :host(.open) .launcher { display: none; }
}
@media (prefers-reduced-motion: no-preference) { .launcher { transition: transform .15s; } .launcher:hover { transform: scale(1.05); } }
`;
