"""The user surface: the ``aflow`` command, the progress display, graph drawing and the web UI."""
