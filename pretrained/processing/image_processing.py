"""Image processors: ``ImageProcessingMixin`` (the ``preprocessor_config.json`` file) and
``BaseImageProcessor`` (convert → resize → crop → rescale → normalise); ``BatchFeature`` comes from
:mod:`pretrained.processing.feature_extraction`.

A processor's settings are its attributes; each call may override any of them. Where it applies (RGB and L
images, uint8 arrays, a C++ compiler), one compiled loop per image resizes with Pillow's arithmetic,
computing only the crop, and writes the normalised floats
(:mod:`~pretrained.processing.resample_kernel`). Otherwise, per image, Pillow converts and resizes and numpy
crops (a view); then the batch's pixels are rescaled and normalised together
(:class:`~pretrained.processing.image_transforms.PixelTable` for uint8 pixels). With two or more
threads to use (the CPUs this process may run on, capped by ``torch.get_num_threads()`` once torch is
loaded), a batch's images resize on a thread pool (and are then normalised there, a share each), and a
single image's resize is split into strips (:func:`~pretrained.processing.image_transforms.split_resize`),
the last pass's strips cropped, rescaled and normalised by the threads that made them; Pillow releases the
GIL while it resamples, numpy while it computes. Outputs equal transformers' ``...ImageProcessorPil``
classes, which model files were trained against.
"""

from __future__ import annotations

import copy
import os
import sys
import threading
from typing import Any, ClassVar

import numpy as np

from pretrained.processing import image_transforms as T
from pretrained.processing import resample_kernel as R
from pretrained.processing.feature_extraction import IMAGE_PROCESSOR_NAME, BatchFeature, ProcessorSettings
from pretrained.processing.image_utils import (
    ChannelDimension,
    PILImageResampling,
    is_pil_image,
    is_torch_tensor,
    make_flat_list_of_images,
)


def _resized_crop(image_height: int, image_width: int, s: dict[str, Any]) -> tuple[int, int, int, int, int, int]:
    """The resize's output ``(height, width)`` for settings ``s``, then the centre crop's ``top, left`` offsets
    in it (``center_crop``'s; negative where the crop is larger and would pad) and its ``height, width``."""
    height, width = T.get_resize_output_image_size(image_height, image_width, s["size"])
    crop_height, crop_width = height, width
    if s["do_center_crop"]:
        crop_height, crop_width = s["crop_size"]["height"], s["crop_size"]["width"]
    return height, width, (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


class ImageProcessingMixin(ProcessorSettings):
    """An image processor's settings (``preprocessor_config.json``, ``image_processor_type``)."""

    _section = "image_processor"
    _type_key = "image_processor_type"
    _auto_class: ClassVar[str | None] = None

    @classmethod
    def get_image_processor_dict(cls, pretrained_model_name_or_path: str | os.PathLike,
                                 **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(settings read from the checkpoint, the remaining kwargs)``."""
        filename = kwargs.pop("image_processor_filename", IMAGE_PROCESSOR_NAME)
        return cls._settings_dict(pretrained_model_name_or_path, filename, **kwargs)


_POOL: list[Any] = []
# Below this many input pixels a single image's resize is not worth cutting into strips for threads.
_SPLIT_MIN_PIXELS = 128 * 128
_POOL_LOCK = threading.Lock()


def _cores() -> int:
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _threads() -> int:
    """Threads the processors may use: the CPUs this process may run on, at most 8, and no more than torch's
    thread count once torch is loaded (a program that limits torch limits this too)."""
    torch = sys.modules.get("torch")
    return max(1, min(_cores(), torch.get_num_threads())) if torch is not None else _cores()


def _pool() -> Any:
    """One thread pool for every processor, made on first use."""
    with _POOL_LOCK:
        if not _POOL:
            from concurrent.futures import ThreadPoolExecutor

            _POOL.append(ThreadPoolExecutor(max_workers=max(2, _cores()), thread_name_prefix="pretrained-images"))
        return _POOL[0]


def _pool_map(fn: Any, items: Any) -> list[Any]:
    """``map(fn, items)`` with all items but the first on the thread pool and the first on the calling thread
    (which would otherwise only wait): one thread wake-up fewer per call.

    Once its own item is done, the calling thread takes back every item no worker has started yet
    (``Future.cancel`` succeeds only then) and runs it itself: on a busy machine, where a worker may wait
    milliseconds for a core, the call then costs what one thread would, instead of that wait.
    """
    items = list(items)
    if not items:
        return []
    futures = [_pool().submit(fn, item) for item in items[1:]]
    out = [fn(items[0])]
    for item, future in zip(items[1:], futures, strict=True):
        out.append(fn(item) if future.cancel() else future.result())
    return out


def get_size_dict(size: Any, default_to_square: bool = True, param_name: str = "size") -> dict[str, int]:
    """A size setting as a dict: an int is a square (or, with ``default_to_square=False``, the shortest
    edge), a pair is ``(height, width)``, a dict must use the known keys.

    Raises:
        ValueError: an unusable size; the message names ``param_name``.
    """
    if hasattr(size, "keys"):
        size = dict(size)
    elif isinstance(size, int) and not isinstance(size, bool):
        size = {"height": size, "width": size} if default_to_square else {"shortest_edge": size}
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        size = {"height": int(size[0]), "width": int(size[1])}
    elif isinstance(size, (list, tuple)) and len(size) == 1:
        return get_size_dict(int(size[0]), default_to_square, param_name)
    else:
        raise ValueError(f"{param_name} must be an int, a (height, width) pair or a dict, got {size!r}.")
    size = {k: v for k, v in size.items() if v is not None}
    allowed = ({"height", "width"}, {"shortest_edge"}, {"shortest_edge", "longest_edge"}, {"longest_edge"},
               {"max_height", "max_width"})
    if set(size) not in allowed:
        raise ValueError(f"{param_name} must have one of the key sets {[sorted(a) for a in allowed]}, got "
                         f"{sorted(size)}.")
    return size


class BaseImageProcessor(ImageProcessingMixin):
    """The standard image processor: optional RGB conversion, resize, centre crop, rescale, normalise.

    Every setting below is a constructor argument and a call argument; the class attributes are the
    family's defaults (``ViTImageProcessor``, ``CLIPImageProcessor`` set theirs).

    Call: ``processor(images, return_tensors="pt")`` with one image or a list (PIL images, numpy arrays or
    torch tensors, ``(H, W, C)`` or ``(C, H, W)``, uint8 or floats) → ``BatchFeature`` with ``pixel_values``
    (``(N, C, H, W)`` float32 with ``"pt"`` / ``"np"``, else a list of arrays).
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values"]
    do_convert_rgb: bool | None = None
    do_resize: bool | None = None
    size: dict[str, int] | None = None
    default_to_square: bool = True
    crop_size: dict[str, int] | None = None
    resample: int | None = None
    do_rescale: bool | None = None
    rescale_factor: float = 1 / 255
    do_normalize: bool | None = None
    image_mean: float | list[float] | None = None
    image_std: float | list[float] | None = None
    do_pad: bool | None = None
    pad_size: dict[str, int] | None = None
    do_center_crop: bool | None = None
    data_format: str | None = None
    input_data_format: str | None = None
    return_tensors: str | None = None

    _SETTINGS: ClassVar[tuple[str, ...]] = (
        "do_convert_rgb", "do_resize", "size", "default_to_square", "crop_size", "resample", "do_rescale",
        "rescale_factor", "do_normalize", "image_mean", "image_std", "do_pad", "pad_size", "do_center_crop",
        "data_format", "input_data_format", "device", "return_tensors", "disable_grouping", "image_seq_length",
    )

    def __init__(self, **kwargs: Any) -> None:
        settings = {key: kwargs.pop(key) for key in self._SETTINGS if key in kwargs}
        kwargs.pop("image_processor_type", None)
        kwargs.pop("use_square_size", None)
        super().__init__(**kwargs)
        for key in self._SETTINGS:
            value = settings.get(key)
            if value is None:
                value = copy.deepcopy(getattr(type(self), key, None))
            if value is not None or key in settings or hasattr(type(self), key):
                setattr(self, key, value)
        self._standardize(self.__dict__)
        self._tables: dict[Any, T.PixelTable] = {}

    @classmethod
    def _setting_names(cls) -> tuple[str, ...]:
        return cls._SETTINGS

    def _standardize(self, settings: dict[str, Any]) -> None:
        square = settings.get("default_to_square", self.default_to_square)
        for name in ("size", "crop_size", "pad_size"):
            if settings.get(name) is not None:
                settings[name] = get_size_dict(settings[name], square if name == "size" else True, name)
        for name in ("image_mean", "image_std"):
            if isinstance(settings.get(name), tuple):
                settings[name] = list(settings[name])
        if settings.get("resample") is not None:
            settings["resample"] = int(settings["resample"])

    @staticmethod
    def _standard(settings: dict[str, Any]) -> bool:
        """Whether settings are already in the standard form (they may have been reassigned since init)."""
        return (all(settings.get(name) is None or isinstance(settings[name], dict)
                    for name in ("size", "crop_size", "pad_size"))
                and not isinstance(settings.get("image_mean"), tuple)
                and not isinstance(settings.get("image_std"), tuple)
                and (settings.get("resample") is None or type(settings["resample"]) is int))

    def to_dict(self) -> dict[str, Any]:
        """The settings as saved: unset settings (``None`` where the class has no default) are left out."""
        out = {}
        for key, value in super().to_dict().items():
            if value is None and getattr(type(self), key, None) is None:
                continue
            if key == "default_to_square" and value == type(self).default_to_square:
                continue  # a class property, not a setting files carry
            out[key] = value
        return out

    def __call__(self, images: Any, *args: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, *args, **kwargs)

    def preprocess(self, images: Any, **kwargs: Any) -> BatchFeature:
        """Process one image or a batch; keyword arguments override the processor's settings for this call.

        Raises:
            ValueError: an unknown argument, an unusable setting, or an input that is not an image.
        """
        unknown = set(kwargs) - set(self._SETTINGS)
        if unknown:
            raise ValueError(f"{type(self).__name__} got unexpected argument(s) {sorted(unknown)}; it accepts "
                             f"{', '.join(self._SETTINGS)}.")
        settings = {key: getattr(self, key, None) for key in self._SETTINGS}
        settings.update({key: value for key, value in kwargs.items() if value is not None})
        if kwargs or not self._standard(settings):  # the processor's own settings were standardised at init
            self._standardize(settings)
        self._validate(settings)
        images = make_flat_list_of_images(images)
        threads = _threads()
        fused = self._fused(images, settings, threads)
        if fused is not None:
            return BatchFeature({"pixel_values": fused}, tensor_type=settings["return_tensors"])
        if len(images) == 1 and threads >= 2:
            image = self._converted(images[0], settings)
            pixels = self._split_single(image, settings, threads)
            if pixels is not None:
                return BatchFeature({"pixel_values": pixels}, tensor_type=settings["return_tensors"])
            prepared = [self._resized(image, settings, threads, converted=True)]
        elif len(images) > 1 and threads >= 2:
            # Pillow releases the GIL while it converts and resizes, so a batch's images resize in parallel:
            # `threads` workers, each taking every threads-th image
            groups = _pool_map(lambda k: [self._resized(image, settings) for image in images[k::threads]],
                               range(min(threads, len(images))))
            prepared = [groups[i % len(groups)][i // len(groups)] for i in range(len(images))]
        else:
            prepared = [self._resized(image, settings, threads) for image in images]
        return BatchFeature({"pixel_values": self._finish(prepared, settings, threads)},
                            tensor_type=settings["return_tensors"])

    def _validate(self, s: dict[str, Any]) -> None:
        if s["do_rescale"] and s["rescale_factor"] is None:
            raise ValueError("`rescale_factor` must be specified if `do_rescale` is `True`.")
        if s["do_normalize"] and (s["image_mean"] is None or s["image_std"] is None):
            raise ValueError("`image_mean` and `image_std` must both be specified if `do_normalize` is `True`.")
        if s["do_center_crop"] and s["crop_size"] is None:
            raise ValueError("`crop_size` must be specified if `do_center_crop` is `True`.")
        if s["do_resize"] and (s["size"] is None or s["resample"] is None):
            raise ValueError("`size` and `resample` must be specified if `do_resize` is `True`.")
        if s["do_pad"]:
            raise ValueError(f"do_pad is not supported by {type(self).__name__} in pretrained.")
        if s["resample"] is not None and s["resample"] not in PILImageResampling._value2member_map_:
            raise ValueError(f"resample must be a PILImageResampling value (0-5), got {s['resample']!r}.")

    # --- per image: convert, resize, crop -------------------------------------------------------------
    def _converted(self, image: Any, s: dict[str, Any]) -> Any:
        """The image after RGB conversion: a PIL image in a mode Pillow resizes directly, or a
        channels-last array."""
        if is_pil_image(image):
            if s["do_convert_rgb"]:
                image = T.convert_to_rgb(image)
            elif image.mode not in ("RGB", "L", "RGBA"):
                image = T.to_channels_last(np.array(image), ChannelDimension.LAST)
        else:
            array = image.detach().cpu().numpy() if is_torch_tensor(image) else np.asarray(image)
            image = T.to_channels_last(array, s["input_data_format"])
            if s["do_convert_rgb"]:
                image = T.convert_to_rgb(image)
        return image

    def _resized(self, image: Any, s: dict[str, Any], threads: int = 1, converted: bool = False) -> Any:
        """One image after conversion (unless ``converted`` says it was), resize and crop, as a channels-last
        array (uint8 when it can be); with ``threads`` > 1 a large PIL image's resize is split across the
        thread pool."""
        if not converted:
            image = self._converted(image, s)
        if s["do_resize"]:
            height, width = (image.height, image.width) if is_pil_image(image) else image.shape[:2]
            target = T.get_resize_output_image_size(height, width, s["size"])
            if (threads > 1 and is_pil_image(image) and height * width >= _SPLIT_MIN_PIXELS
                    and T.can_split_resize(image, s["resample"])):
                resized = T.split_resize(image, (target[1], target[0]), s["resample"], threads, _pool_map)
                image = T.to_channels_last(np.asarray(resized), ChannelDimension.LAST)
            else:
                image = T.resize(image, target, s["resample"])
        elif is_pil_image(image):
            image = T.to_channels_last(np.asarray(image), ChannelDimension.LAST)
        if s["do_center_crop"]:
            crop = s["crop_size"]
            image = T.center_crop(image, (crop["height"], crop["width"]))
        return image

    # --- the compiled path: resize, crop, rescale and normalise in one loop per image ------------------
    @staticmethod
    def _fusable(s: dict[str, Any]) -> bool:
        return bool(s["do_resize"] and (s["do_rescale"] or s["do_normalize"]) and s["return_tensors"] in ("pt", "np")
                    and s["data_format"] not in (ChannelDimension.LAST, "channels_last")
                    and s["resample"] != PILImageResampling.NEAREST)

    def _plan(self, image: Any, s: dict[str, Any]) -> tuple[R.Plan, R.Pixels] | None:
        """How the compiled loop makes one converted image's pixel values (a plan and the pixels it reads), or
        ``None`` where it does not apply (other modes or dtypes, a crop larger than the image, no loop)."""
        if is_pil_image(image):
            pixels = R.pil_pixels(image)
        elif isinstance(image, np.ndarray) and image.dtype == np.uint8:
            pixels = R.array_pixels(image) or R.array_pixels(np.ascontiguousarray(image))
        else:
            return None
        if pixels is None:
            return None
        height, width, top, left, crop_height, crop_width = _resized_crop(pixels.height, pixels.width, s)
        if top < 0 or left < 0 or crop_height <= 0 or crop_width <= 0:
            return None  # a crop larger than the image pads it: the general path does that
        plan = R.plan((pixels.width, pixels.height), (width, height), s["resample"],
                      (left, top, crop_width, crop_height))
        return None if plan is None else (plan, pixels)

    def _fused(self, images: list[Any], s: dict[str, Any], threads: int) -> np.ndarray | None:
        """The batch's ``(N, C, H, W)`` pixel values from the compiled loop
        (:mod:`~pretrained.processing.resample_kernel`: Pillow's resampling arithmetic, only the kept crop
        computed, rows written through the pixel table), or ``None`` where it does not apply (then the
        general path runs). A single image's rows are shared by ``threads`` threads; a batch's images spread
        over them. An image the loop does not take takes the general path into its slot, if its shape fits."""
        if not self._fusable(s) or not R.available():
            return None
        first = self._converted(images[0], s)
        planned = self._plan(first, s)
        if planned is None:
            return None
        plan, pixels = planned
        channels, (_, _, width, height) = pixels.channels, plan.window
        table = self._table(channels, s)
        out = np.empty((len(images), channels, height, width), dtype=np.float32)
        if len(images) == 1:  # a small image is not worth a thread hand-off
            spans = T.row_shares(height, threads if pixels.width * pixels.height >= _SPLIT_MIN_PIXELS else 1)
            _pool_map(lambda span: plan.run(pixels, table.table, out[0, :, span[0]:span[1]], span), spans)
            return out

        def fill(k: int) -> bool:  # every parts-th image from the k-th
            for i in range(k, len(images), parts):
                image = first if i == 0 else self._converted(images[i], s)
                planned = self._plan(image, s)
                if planned is not None and planned[0].window[2:] == (width, height) and (
                        planned[1].channels == channels):
                    planned[0].run(planned[1], table.table, out[i], (0, height))
                    continue
                resized = self._resized(image, s, converted=True)
                if resized.shape != (height, width, channels) or resized.dtype != np.uint8:
                    return False
                table.apply_into(resized, out[i])
            return True

        parts = min(threads, len(images))
        return out if all(_pool_map(fill, range(parts))) else None

    def _split_single(self, image: Any, s: dict[str, Any], threads: int) -> np.ndarray | None:
        """One large converted PIL image processed on ``threads`` threads from resize to normalised pixels, or
        ``None`` where this does not apply (then the general path runs).

        The resize's last pass is cut into strips (:func:`~pretrained.processing.image_transforms.split_resize`)
        and each thread crops, rescales and normalises its own strip straight into the ``(1, C, H, W)``
        result: the same pixels and the same arithmetic as the general path, with no assembled image.
        """
        if not (is_pil_image(image) and s["do_resize"] and (s["do_rescale"] or s["do_normalize"])
                and s["return_tensors"] in ("pt", "np")
                and s["data_format"] not in (ChannelDimension.LAST, "channels_last")):
            return None
        channels = {"RGB": 3, "L": 1, "RGBA": 4}.get(getattr(image, "mode", None))
        if (channels is None or image.height * image.width < _SPLIT_MIN_PIXELS
                or not T.can_split_resize(image, s["resample"])):
            return None
        height, width, top, left, crop_height, crop_width = _resized_crop(image.height, image.width, s)
        if top < 0 or left < 0:
            return None  # a crop larger than the image pads it: the general path does that
        table = self._table(channels, s)
        out = np.empty((1, channels, crop_height, crop_width), dtype=np.float32)

        def finish(piece: Any, x: int, y: int) -> None:
            # the part of this strip inside the crop, written to its place in the result
            rows = max(y, top), min(y + piece.height, top + crop_height)
            cols = max(x, left), min(x + piece.width, left + crop_width)
            if rows[0] >= rows[1] or cols[0] >= cols[1]:
                return
            pixels = np.asarray(piece)
            pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
            table.apply_into(pixels[rows[0] - y:rows[1] - y, cols[0] - x:cols[1] - x],
                             out[0, :, rows[0] - top:rows[1] - top, cols[0] - left:cols[1] - left])

        T.split_resize(image, (width, height), s["resample"], threads, _pool_map, finish=finish)
        return out

    # --- the batch: rescale and normalise -------------------------------------------------------------
    def _finish(self, images: list[np.ndarray], s: dict[str, Any], threads: int = 1) -> list[np.ndarray] | np.ndarray:
        same = all(im.shape == images[0].shape and im.dtype == images[0].dtype for im in images)
        last = s["data_format"] in (ChannelDimension.LAST, "channels_last")
        if same and images[0].dtype == np.uint8 and (s["do_rescale"] or s["do_normalize"]):
            table = self._table(images[0].shape[-1], s)
            height, width, channels = images[0].shape
            out = np.empty((len(images), channels, height, width), dtype=np.float32)
            parts = min(threads, len(images))

            def fill(k: int) -> None:  # every parts-th image from the k-th (numpy releases the GIL)
                for i in range(k, len(images), parts):
                    table.apply_into(images[i], out[i])

            if parts > 1:
                _pool_map(fill, range(parts))
            else:
                fill(0)
            if s["return_tensors"] in ("pt", "np") and not last:
                return out  # one array: the tensor is made from it without another copy
            batch = list(out)
        else:
            batch = [self._rescale_normalize(im, s) for im in images]
        if last:
            batch = [np.moveaxis(im, 0, -1) for im in batch]
        return batch

    def _table(self, channels: int, s: dict[str, Any]) -> T.PixelTable:
        mean, std = s["image_mean"], s["image_std"]
        key = (channels, bool(s["do_rescale"]), s["rescale_factor"], bool(s["do_normalize"]),
               tuple(mean) if isinstance(mean, list) else mean, tuple(std) if isinstance(std, list) else std)
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = T.PixelTable(channels, bool(s["do_rescale"]), s["rescale_factor"],
                                                     bool(s["do_normalize"]), mean, std)
        return table

    def _rescale_normalize(self, image: np.ndarray, s: dict[str, Any]) -> np.ndarray:
        if s["do_rescale"]:
            image = T.rescale(image, s["rescale_factor"])
        if s["do_normalize"]:
            image = T.normalize(image, s["image_mean"], s["image_std"], channel_axis=-1)
        return np.ascontiguousarray(np.moveaxis(image, -1, 0))

    # --- the single operations, for code that calls them directly -------------------------------------
    def resize(self, image: Any, size: dict[str, int], resample: int | None = None, **kwargs: Any) -> np.ndarray:
        """Resize a channels-last array or PIL image for a size dict."""
        array = image if is_pil_image(image) else T.to_channels_last(np.asarray(image))
        height, width = (array.height, array.width) if is_pil_image(array) else array.shape[:2]
        size = get_size_dict(size, self.default_to_square)
        return T.resize(array, T.get_resize_output_image_size(height, width, size), resample)

    def center_crop(self, image: np.ndarray, size: dict[str, int], **kwargs: Any) -> np.ndarray:
        size = get_size_dict(size, param_name="crop_size")
        return T.center_crop(image, (size["height"], size["width"]))

    def rescale(self, image: np.ndarray, scale: float, **kwargs: Any) -> np.ndarray:
        return T.rescale(image, scale)

    def normalize(self, image: np.ndarray, mean: Any, std: Any, **kwargs: Any) -> np.ndarray:
        return T.normalize(image, mean, std)

    def fetch_images(self, image_url_or_urls: Any) -> Any:
        """Load URLs / paths (or lists of them) as PIL images; images pass through."""
        from pretrained.processing.image_utils import load_image

        if isinstance(image_url_or_urls, (list, tuple)):
            return [self.fetch_images(x) for x in image_url_or_urls]
        if isinstance(image_url_or_urls, (str, os.PathLike)):
            return load_image(image_url_or_urls)
        return image_url_or_urls


# transformers 5 names the Pillow backend base class; family processors subclass it with class defaults.
PilBackend = BaseImageProcessor
