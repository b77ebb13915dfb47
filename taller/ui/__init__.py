"""The Textual chat's parts (``taller chat``), one concern per module; the App is :mod:`taller.tui`.

Plain logic, no Textual: ``formatting`` (markup, links, numbers), ``runs`` (progress events →
per-run state), ``commands`` (the slash-command interpreter), ``charts`` (a chart spec as text),
``clipboard`` (what a message offers to copy, where a copy goes), ``branches`` (where a thread's
``◀ k/n ▶`` marks go); ``help`` writes the help text from the widgets' key bindings. Widgets: ``chat_log``,
``cards``, ``widgets`` (messages, images, runs panel, attachments, next steps, the edit line),
``threads``, ``status``; dialogs: ``screens`` (confirmation, prompt, picker, help, copy, export,
runs) and ``search``.
"""
