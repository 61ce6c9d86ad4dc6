"""File tasks: copy, move, remove, glob, zip, unzip, read and write local files.

The names and arguments follow Prefect 1's ``prefect.tasks.files`` (``Copy``, ``Move``,
``Remove``, ``Glob``, ``Zip``, ``Unzip``); `ReadFile` and `WriteFile` are aflow's own. Nothing
blocks the event loop: file contents go through aiofiles, path checks through `anyio.Path`, and
``shutil``/``zipfile`` work runs in a worker thread (`anyio.to_thread.run_sync`). A cancelled
task waits for a worker-thread step already under way to finish, then the cancellation goes on.

Every path argument takes a ``str`` or an ``os.PathLike``; tasks return `pathlib.Path` objects.

`Unzip` is zip-slip safe: before it writes anything it checks every member and refuses the whole
archive (a ValueError naming the member) when one is an absolute path, contains ``..``, would
land outside the extract folder through a symlink already there, or is a symlink whose target
points outside. `WriteFile` and `Zip` write atomically by default (a temporary file in the same
directory, then ``os.replace``), so a reader never sees a half-written file.

`ReadFile` and `WriteFile` need the ``files`` extra: ``pip install aflow-engine[files]``; the other
tasks need nothing beyond anyio.
"""

from __future__ import annotations

from ._archives import Unzip as Unzip
from ._archives import Zip as Zip
from ._common import COMPRESSION_METHODS as COMPRESSION_METHODS
from ._contents import ReadFile as ReadFile
from ._contents import WriteFile as WriteFile
from ._paths import Copy as Copy
from ._paths import Glob as Glob
from ._paths import Move as Move
from ._paths import Remove as Remove

__all__ = ("COMPRESSION_METHODS", "Copy", "Glob", "Move", "ReadFile", "Remove", "Unzip", "WriteFile", "Zip")
