"""The Textual chat's parts (``taller chat``), one concern per module; the App is :mod:`taller.tui`.

Plain logic, no Textual: ``formatting`` (markup, links, numbers), ``runs`` (progress events →
per-run state), ``commands`` (the slash-command interpreter). Widgets: ``chat_log``, ``cards``,
``widgets`` (messages, images, runs panel, attachments), ``threads``, ``status``; dialogs:
``screens``.
"""
