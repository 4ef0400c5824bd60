"""Files on disk that are not models: output paths, atomic writes, aliasing checks.

No onnx or numpy here, so the command line can check paths before anything heavy loads.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from onnxdoctor.errors import OnnxDoctorError, OverwritesInput


def same_file(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same path once resolved, or the same inode
    (a symlink or a hard link to it)."""
    try:
        if Path(first).resolve() == Path(second).resolve():
            return True
        return os.path.samefile(first, second)
    except (OSError, ValueError):  # one of them does not exist (yet), or cannot be a path
        return False


def refuse_overwriting(
    output: str | os.PathLike, inputs: Iterable[str | os.PathLike], what: str, hint: str = ""
) -> None:
    """Raise OverwritesInput if `output` is the same file as one of `inputs` (described as `what`)."""
    for given in inputs:
        if same_file(output, given):
            raise OverwritesInput(f"{output}: refusing to overwrite {what} ({given}){hint}")


def check_writable(path: str | os.PathLike) -> Path:
    """The output path, if its folder exists and can be written to; else a one-line error."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise OnnxDoctorError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OnnxDoctorError(f"{path}: folder {folder} is not writable")
    if path.is_dir():
        raise OnnxDoctorError(f"{path}: is a folder")
    return path


def publish_file(temporary: Path, path: Path) -> None:
    """Give a finished temporary file the permissions a new file gets (or the replaced file
    had), then rename it into place: the only moment the output path changes."""
    if path.exists():
        mode = path.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def write_atomically(data: bytes, path: str | os.PathLike) -> None:
    """Write a file atomically: a temporary file in the same folder, then a rename.

    A reader (or a killed process) never sees half a file, and an existing file is only
    replaced once the new one is complete.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        publish_file(Path(temporary), path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
