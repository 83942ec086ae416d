"""``python -m pycontainerd.runtime.shim``: see ``_main``."""

from ._main import main

main()
