"""``python -m remote_executors.cli``: the same as the ``remote-executors`` command."""

from remote_executors.cli import main

main()
