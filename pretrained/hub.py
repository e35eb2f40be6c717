"""Find the files of a checkpoint: a local folder, or a repo id in the Hugging Face cache.

Downloads happen only when allowed (not ``local_files_only``, not ``HF_HUB_OFFLINE``).
``huggingface_hub`` is imported only for repo ids, so local loading stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "ON", "YES", "TRUE"}


def is_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or the legacy ``TRANSFORMERS_OFFLINE``) forbids downloads."""
    return any(os.environ.get(k, "").upper() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _join(subfolder: str, filename: str) -> str:
    return f"{subfolder.strip('/')}/{filename}" if subfolder else filename


def cached_file(
    path_or_repo_id: str | os.PathLike,
    filename: str,
    *,
    subfolder: str = "",
    cache_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    raise_if_missing: bool = True,
) -> str | None:
    """Return the local path of ``filename`` in a checkpoint.

    Args:
        path_or_repo_id: A local folder, or a repo id (``"org/name"``) looked up in the Hugging Face cache.
        filename: The file inside the checkpoint (``"config.json"``).
        subfolder: A folder inside the checkpoint that holds the file.
        cache_dir: The Hugging Face cache to search instead of the default one.
        revision: Branch, tag or commit of the repo.
        local_files_only: Never download; only the local folder or cache is searched.
        token: Token for private repos (downloads only).
        raise_if_missing: Raise ``OSError`` when the file is not found (else return ``None``).

    Raises:
        OSError: The file is not there; the message names the file and where it looked.
    """
    name = _join(subfolder, filename)
    path = Path(path_or_repo_id)
    if path.is_dir():
        candidate = path / name
        if candidate.is_file():
            return str(candidate)
        if raise_if_missing:
            raise OSError(f"{path} does not contain a file named {name!r}.")
        return None
    repo_id = str(path_or_repo_id)
    if os.path.isfile(repo_id):
        raise OSError(f"{repo_id!r} is a file; expected a folder or a repo id.")
    if repo_id.count("/") > 1 or repo_id.startswith((".", "/", "~")):
        raise OSError(f"Could not find {name!r}: {repo_id!r} is neither an existing folder nor a valid repo id.")

    import huggingface_hub as hf
    from huggingface_hub import constants, errors

    found = hf.try_to_load_from_cache(
        repo_id, name, cache_dir=str(cache_dir) if cache_dir else None, revision=revision
    )
    if isinstance(found, str):
        return found
    searched = f"the Hugging Face cache ({cache_dir or constants.HF_HUB_CACHE})"
    offline = local_files_only or is_offline()
    if found is not None or offline:
        # `found` is the "known absent" marker: the repo was fetched and has no such file.
        if not raise_if_missing:
            return None
        why = "" if found is not None else " Downloads are disabled (local_files_only / HF_HUB_OFFLINE)."
        raise OSError(f"Could not find {name!r} for {repo_id!r}: it is not a local folder and {searched} "
                      f"has no such file at revision {revision or 'main'}.{why}")
    try:
        return hf.hf_hub_download(repo_id, name, cache_dir=cache_dir, revision=revision, token=token)
    except errors.EntryNotFoundError:
        if raise_if_missing:
            raise OSError(f"{repo_id!r} has no file named {name!r} (revision {revision or 'main'}).") from None
        return None
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as e:
        raise OSError(f"{repo_id!r} is not a local folder, and the Hub does not have it: {e}") from None
    except (OSError, errors.HfHubHTTPError) as e:
        if not raise_if_missing:
            return None
        raise OSError(f"Could not find {name!r} for {repo_id!r} locally or in {searched}, and downloading "
                      f"it failed: {e}") from None
