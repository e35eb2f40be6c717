"""What `Trainer` reports once a run is over: metrics printed and saved, the state, a model card,
the upload to the Hub, and the floating-point operations counted on the way.

Every file is written whole under a temporary name and renamed in, with the user's umask, so a
crash never leaves half of a results file; `push_to_hub` reaches the Hub before it writes anything.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import torch

from .model_card import render_model_card

logger = logging.getLogger(__name__)

TRAINER_STATE_NAME = "trainer_state.json"
MODEL_CARD_NAME = "README.md"


def write_text_atomic(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder, then rename it in.

    `open()` creates the file with the user's umask (unlike `tempfile.mkstemp`'s 0600).
    """
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _secs2timedelta(secs: float) -> str:
    """Seconds as `h:mm:ss.cc`, the way transformers prints runtimes."""
    hundredths = int(abs(secs - int(secs)) * 100)
    return f"{datetime.timedelta(seconds=int(secs))}.{hundredths:02d}"


def metrics_format(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics made readable: runtimes as h:mm:ss, `total_flos` in GF, memory in MB, floats to 4 places."""
    out = dict(metrics)
    for k, v in out.items():
        if "_mem_" in k:
            out[k] = f"{int(v) >> 20}MB"
        elif "_runtime" in k:
            out[k] = _secs2timedelta(v)
        elif k == "total_flos":
            out[k] = f"{int(v) >> 30}GF"
        elif isinstance(v, float):
            out[k] = round(v, 4)
    return out


class ReportingMixin:
    """`log_metrics`, `save_metrics`, `save_state`, `create_model_card`, `push_to_hub` and the flos count."""

    def log_metrics(self, split: str, metrics: Mapping[str, Any]) -> None:
        """Print `metrics` as an aligned block headed `***** {split} metrics *****`, keys sorted.

        Args:
            split: `train`, `eval`, `test`, ... (only names the block).
            metrics: What `train` / `evaluate` / `predict` returned.
        """
        if not self.is_world_process_zero():
            return
        print(f"***** {split} metrics *****")
        formatted = metrics_format(metrics)
        if not formatted:
            return
        k_width = max(len(str(k)) for k in formatted)
        v_width = max(len(str(v)) for v in formatted.values())
        for key in sorted(formatted):
            print(f"  {key: <{k_width}} = {formatted[key]:>{v_width}}")

    def save_metrics(self, split: str, metrics: Mapping[str, Any], combined: bool = True) -> None:
        """Write `metrics` to `{output_dir}/{split}_results.json`, and merge them into `all_results.json`.

        Args:
            split: Names the file (`train`, `eval`, `test`, `all`).
            metrics: The raw (unformatted) metrics.
            combined: Also update `all_results.json` with these metrics.
        """
        if not self.is_world_process_zero():
            return
        out = self.args.output_dir
        os.makedirs(out, exist_ok=True)
        metrics = dict(metrics)
        write_text_atomic(os.path.join(out, f"{split}_results.json"), _dumps(metrics))
        if combined:
            path = os.path.join(out, "all_results.json")
            merged: dict[str, Any] = {}
            if os.path.exists(path):
                try:
                    with open(path, encoding="utf-8") as f:
                        merged = json.load(f)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise OSError(f"{path} is not valid JSON ({e}); remove it to start it afresh") from None
                if not isinstance(merged, dict):
                    raise OSError(f"{path} must hold a JSON object, not {type(merged).__name__}")
            merged.update(metrics)
            write_text_atomic(path, _dumps(merged))

    def save_state(self) -> None:
        """Write the `TrainerState` to `{output_dir}/trainer_state.json` (`save_model` writes only the model)."""
        if not self.is_world_process_zero():
            return
        os.makedirs(self.args.output_dir, exist_ok=True)
        write_text_atomic(os.path.join(self.args.output_dir, TRAINER_STATE_NAME), self.state.to_json_string())

    # ---- floating-point operations --------------------------------------------------------------

    def floating_point_ops(self, inputs: Mapping[str, Any]) -> int:
        """Forward and backward floating-point operations of one batch: 6 x tokens x non-embedding
        parameters for a model with `num_parameters`, else 0 (override for other models)."""
        main_input = getattr(self.model, "main_input_name", "input_ids")
        if isinstance(inputs, Mapping) and main_input in inputs and hasattr(self.model, "num_parameters"):
            tokens = inputs[main_input]
            count = tokens.numel() if isinstance(tokens, torch.Tensor) else len(tokens)
            return 6 * count * self._non_embedding_parameters()
        return 0

    def _non_embedding_parameters(self) -> int:
        # counted once per run: the count walks the whole module tree
        cached = getattr(self, "_flos_param_count", None)
        if cached is None or cached[0] is not self.model:
            cached = (self.model, self.model.num_parameters(exclude_embeddings=True))
            self._flos_param_count = cached
        return cached[1]

    def store_flos(self) -> None:
        """Add the operations counted since the last call to `state.total_flos`."""
        self.state.total_flos += getattr(self, "current_flos", 0)
        self.current_flos = 0

    # ---- model card and the Hub -----------------------------------------------------------------

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
    ) -> None:
        """Write a draft `README.md` model card to `output_dir`: metadata, the last evaluation's results,
        the hyperparameters and a table of the evaluations during training.

        Args:
            language: Language(s) of the model.
            license: The license identifier.
            tags: Tags for the metadata (`generated_from_trainer` is always added).
            model_name: The card's title (default: `output_dir`'s name).
            finetuned_from: The base model (default: the model's `_name_or_path` unless a local folder).
            tasks: Task identifier(s); the first becomes the `pipeline_tag`.
            dataset_tags: Dataset identifiers for the metadata.
            dataset: Dataset names for the description.
            dataset_args: Dataset configurations for the description.
        """
        card = {k: v for k, v in locals().items() if k != "self"}  # the arguments above, by name
        if not self.is_world_process_zero():
            return
        text = render_model_card(self, card)
        os.makedirs(self.args.output_dir, exist_ok=True)
        write_text_atomic(os.path.join(self.args.output_dir, MODEL_CARD_NAME), text)

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        """Create (or find) the Hub repository `args.hub_model_id` (default: `output_dir`'s name).

        Raises:
            OSError: The Hub could not be reached (offline, no network, no token), naming the repository.
        """
        args = self.args
        repo = getattr(args, "hub_model_id", None) or os.path.basename(os.path.abspath(args.output_dir))
        token = token if token is not None else getattr(args, "hub_token", None)
        private = private if private is not None else getattr(args, "hub_private_repo", None)
        from huggingface_hub import HfApi

        try:
            url = HfApi().create_repo(repo, token=token, private=private, exist_ok=True)
        except Exception as e:  # offline mode, no network, no token: all end here
            raise OSError(
                f"push_to_hub: could not create or reach the Hub repository {repo!r} "
                f"({type(e).__name__}: {e}); nothing was written or uploaded"
            ) from e
        self.hub_model_id = url.repo_id

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Save the model, its processing class and a model card to `output_dir`, then upload the folder
        to the Hub repository `args.hub_model_id` through `huggingface_hub`.

        The repository is created (or found) first: without network this raises `OSError` before any
        file is written.

        Args:
            commit_message: The commit's message.
            blocking: Wait for the upload (`False`: return a `Future` of it).
            token: A token with write access (default: `args.hub_token` or the saved login).
            revision: The branch to commit to (default: `args.hub_revision`, else `main`).
            private: Make a new repository private (default: `args.hub_private_repo`).
            kwargs: Passed to `create_model_card` (`model_name`, `language`, `tags`, ...).

        Returns:
            The `CommitInfo` of the upload (or a `Future` of it with `blocking=False`).
        """
        args = self.args
        self.control = self.callback_handler.on_push_begin(args, self.state, self.control)
        token = token if token is not None else getattr(args, "hub_token", None)
        if getattr(self, "hub_model_id", None) is None:
            self.init_hf_repo(token=token, private=private)
        if kwargs.get("model_name") is None:
            kwargs["model_name"] = self.hub_model_id.split("/")[-1]
        self.save_model()
        if not self.is_world_process_zero():
            return None
        self.create_model_card(**kwargs)
        from huggingface_hub import HfApi

        revision = revision if revision is not None else getattr(args, "hub_revision", None)
        try:
            return HfApi().upload_folder(
                repo_id=self.hub_model_id,
                folder_path=args.output_dir,
                commit_message=commit_message,
                token=token,
                revision=revision,
                run_as_future=not blocking,
                ignore_patterns=["_*", "checkpoint-*/**", "tmp-checkpoint-*/**"],
            )
        except Exception as e:
            raise OSError(
                f"push_to_hub: uploading {args.output_dir} to {self.hub_model_id!r} failed "
                f"({type(e).__name__}: {e}); the local files are complete, retry the upload"
            ) from e


def _dumps(metrics: Mapping[str, Any]) -> str:
    return json.dumps(metrics, indent=4, sort_keys=True) + "\n"
