"""The workshop's trainers: one readable file per model, on a small shared engine.

Each trainer module defines a ``Config`` dataclass and ``train(config, ...) -> dict`` of metrics,
and runs as a script: ``python -m taller.trainers.<name> --epochs N --dry-run``.
"""

# model name (the ``train_model`` tool's argument) -> module
TRAINERS: dict[str, str] = {
    "dense_classifier": "taller.trainers.dense_classifier",
    "autoencoder": "taller.trainers.autoencoder",
    "vae": "taller.trainers.vae",
    "pix2pix": "taller.trainers.pix2pix",
    "rnn": "taller.trainers.rnn",
    "birnn": "taller.trainers.birnn",
    "seq2seq": "taller.trainers.seq2seq",
}
