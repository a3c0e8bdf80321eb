"""The checks on a key file and its lock (``keyring.py`` reads and writes the keys): a
regular file of the effective user's, readable by it only, in a directory others cannot
write (or with the sticky bit), never reached through a symbolic link. Each refusal is a
:class:`SecretKeyError`: a misconfigured host (HTTP 500), not the caller's doing."""

from __future__ import annotations

import os

from ...core.errors import SecretKeyError, quoted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = ["KEY_FILE_ENV", "check_directory", "check_file", "locked", "open_no_follow"]

KEY_FILE_ENV: Final = "STATEBOX_SECRET_KEY_FILE"


def check_file(path: str, st: os.stat_result) -> None:
    """Refuse a key file that is not a regular file of this user's, readable by it only."""
    if (st.st_mode & 0o170000) != 0o100000:  # S_ISREG
        raise SecretKeyError(f"the key file {path} is not a regular file")
    if st.st_uid != os.geteuid():
        raise SecretKeyError(
            f"the key file {path} is owned by uid {st.st_uid}, not by the user statebox runs "
            f"as (uid {os.geteuid()}): another user could replace the key; run chown "
            f"{os.geteuid()} {quoted(path)}"
        )
    if st.st_mode & 0o077:
        raise SecretKeyError(
            f"the key file {path} has mode {oct(st.st_mode & 0o777)[2:]}: others may read it; "
            f"it must be readable by its owner only: run chmod 600 {quoted(path)}"
        )


def check_directory(path: str) -> None:
    """Refuse a key file whose directory others may write without the sticky bit: they
    could replace the key file (or its lock) with their own."""
    directory = os.path.dirname(path)
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise SecretKeyError(
            f"cannot read the key file's directory {directory}: {exc.strerror}"
        ) from exc
    if st.st_mode & 0o022 and not st.st_mode & 0o1000:  # group/other write, no S_ISVTX
        raise SecretKeyError(
            f"the key file {path} is in {directory}, which others may write (mode "
            f"{oct(st.st_mode & 0o777)[2:]}, no sticky bit): they could replace the key "
            f"file; run chmod go-w {quoted(directory)}, or keep the key elsewhere "
            f"({KEY_FILE_ENV})"
        )


def open_no_follow(path: str, flags: int, hint: str) -> int:
    """``os.open`` (mode 0600 when it creates) that refuses a symbolic link as the last
    part of ``path``; ``hint`` says what to do instead."""
    import errno

    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SecretKeyError(
                f"{path} is a symbolic link: statebox opens no key file, nor its lock, "
                f"through one ({hint})"
            ) from None
        raise


class locked:
    """The exclusive lock ``<keyfile>.lock`` (flock), held while the key file is created
    or a key added; its directory made (0700) and checked first."""

    def __init__(self, path: str, doing: str) -> None:
        self.path = path
        self.doing = doing
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl

        path = self.path
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        except OSError as exc:
            raise SecretKeyError(
                f"cannot {self.doing} the key file {path}: {exc.strerror}"
            ) from exc
        check_directory(path)
        try:
            self.fd = open_no_follow(
                path + ".lock", os.O_WRONLY | os.O_CREAT, "remove the link: the lock is made anew"
            )
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            if self.fd >= 0:
                os.close(self.fd)
            raise SecretKeyError(f"cannot lock the key file {path}: {exc.strerror}") from exc

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock
