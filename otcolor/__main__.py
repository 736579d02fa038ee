r"""Runs the ``otcolor`` command as ``python -m otcolor``."""

from ._entry import main

if __name__ == "__main__":
    main()
