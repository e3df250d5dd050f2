"""``python -m wavtune.cli``: the entry point torchrun and ``accelerate launch -m`` use."""

from wavtune.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
