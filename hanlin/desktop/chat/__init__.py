"""The chat side of the desktop window.

- `models`: Qt list models for conversations (sidebar) and messages (chat view);
- `markdown`: Markdown + pygments to Qt rich text, with a copy link per code block;
- `generation`: the worker function that loads a model and streams an answer into
  the history database (no Qt: it runs on the TaskRunner's pool);
- `controller`: `ChatController`, the state of the open conversation and every
  action on it (send, stop, regenerate, edit, model, thinking, system prompt, export);
- `view`: `ChatView`, the widgets (messages, composer, model picker, switches);
- `dialogs`: the system-prompt (with presets) and per-model settings dialogs.
"""
