"""`sam2sod demo`: a Gradio app around `sam2sod.Predictor` (runs on CPU).

Upload an image file: the prompt-free saliency map, the cut-out and an overlay appear. Clicking the image or
the overlay adds a foreground / background point, or (box mode) one box corner per click; every change
decodes the cached embedding again (the encoder runs once per image) and keeps the previous result on screen
until the new one is ready. The PNGs (map, mask, cut-out, overlay) are named after the uploaded file and can
be downloaded. A file that is not a readable image, or one above `MAX_PIXELS`, is refused with one sentence
in the status line; an image above `DISPLAY_PIXELS` is downscaled (aspect kept) before display and
prediction. Gradio is an optional extra: ``pip install 'sam2sod[demo]'``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import tempfile
import threading
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from sam2sod.atomic import atomic_save_image
from sam2sod.errors import SodError
from sam2sod.infer.formats import cutout, draw_overlay, to_mask
from sam2sod.infer.predictor import Prediction, Predictor
from sam2sod.outputs import prepare_output_dir

__all__ = ["DISPLAY_PIXELS", "MAX_PIXELS", "MODES", "DemoSession", "build_demo", "check_address", "launch",
           "load_upload", "render"]

MODES = ("foreground point", "background point", "box (2 clicks)")
MAX_PIXELS = 40_000_000  # uploads above this many pixels (e.g. 8000 x 5000) are refused, read from the header
DISPLAY_PIXELS = 4_000_000  # uploads above this are downscaled to it (aspect kept) for display and prediction
RANDOM_INIT = ("**RANDOM INIT**: this model's SAM2 base has no pretrained weights; maps show what the pipeline "
               "does, not what SAM2 can do.")
NO_IMAGE = "upload an image first"
_OUTPUTS = ("saliency", "mask", "cutout", "overlay")


@dataclass
class DemoSession:
    """One browser session: its image (RGB HxWx3), file stem, prompts (image pixels) and download folder key."""

    image: np.ndarray | None = None
    key: str = ""
    stem: str = "image"
    note: str = ""  # e.g. "downscaled from 6000x4000", shown in the status line
    points: list[tuple[int, int]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[int, int, int, int] | None = None
    corner: tuple[int, int] | None = None

    def clear(self) -> None:
        self.points, self.labels, self.box, self.corner = [], [], None, None

    def forget(self) -> None:
        """Drop the image and its prompts (a failed upload or a cleared panel)."""
        self.image, self.key, self.stem, self.note = None, "", "image", ""
        self.clear()

    def describe(self) -> str:
        fg = sum(self.labels)
        parts = [f"{len(self.points)} point(s) ({fg} fg, {len(self.points) - fg} bg)"] if self.points else []
        if self.box is not None:
            parts.append(f"box {self.box}")
        if self.corner is not None:
            parts.append(f"box corner {self.corner}: click the opposite corner")
        return ", ".join(parts) or "prompt-free"


def _safe_stem(name: str) -> str:
    """A download-file stem from an uploaded file name: letters, digits, ``. _ -``; 'image' when nothing is left."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name)).stem).lstrip("._-")[:80]
    return stem or "image"


def load_upload(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Read an uploaded file -> (RGB uint8 HxWx3, note); SodError with one plain sentence when it cannot.

    The size comes from the header before any pixel is decoded: above `MAX_PIXELS` it is refused; above
    `DISPLAY_PIXELS` it is decoded at reduced scale where the format allows (JPEG) and downscaled.
    """
    name = Path(path).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SodError(f"{name} is too large: the demo takes images up to {MAX_PIXELS / 1e6:.0f} megapixels") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise SodError(f"this file is not an image we can read: {name} ({_reason(err)})") from None
    with im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise SodError(f"{name} is {w}x{h} ({w * h / 1e6:.1f} megapixels): the demo takes images up to "
                           f"{MAX_PIXELS / 1e6:.0f} megapixels; downscale it first")
        scale = min(1.0, (DISPLAY_PIXELS / (w * h)) ** 0.5)
        try:
            if scale < 1:
                im.draft("RGB", (max(1, round(w * scale)), max(1, round(h * scale))))  # JPEG: 1/2..1/8 scale
            rgb = ImageOps.exif_transpose(im.convert("RGB"))
            rw, rh = rgb.size
            fit = min(1.0, (DISPLAY_PIXELS / (rw * rh)) ** 0.5)
            if fit < 1:
                rgb = rgb.resize((max(1, round(rw * fit)), max(1, round(rh * fit))), Image.Resampling.LANCZOS)
            arr = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
        except (OSError, ValueError, SyntaxError) as err:
            raise SodError(f"this file is not an image we can read: {name} ({_reason(err)})") from None
    note = f"downscaled from {w}x{h} to {arr.shape[1]}x{arr.shape[0]}" if scale < 1 else ""
    return arr, note


def _reason(err: BaseException) -> str:
    text = str(err).split("\n")[0]
    text = re.sub(r"(/[^\s'\"]+)+", "", text).strip(" :'\"")  # no temp paths
    return text or type(err).__name__


def _markers(overlay: np.ndarray, s: DemoSession) -> np.ndarray:
    """Draw the prompts on an RGB overlay: green (fg) / red (bg) dots with a white ring, the box in white."""
    im = Image.fromarray(overlay)
    d = ImageDraw.Draw(im)
    r = max(3, round(0.012 * max(overlay.shape[:2])))
    if s.box is not None:
        d.rectangle(s.box, outline=(255, 255, 255), width=max(1, r // 2))
    if s.corner is not None:
        x, y = s.corner
        d.line([(x - 2 * r, y), (x + 2 * r, y)], fill=(255, 255, 255), width=2)
        d.line([(x, y - 2 * r), (x, y + 2 * r)], fill=(255, 255, 255), width=2)
    for (x, y), lab in zip(s.points, s.labels, strict=True):
        d.ellipse([x - r, y - r, x + r, y + r], fill=(0, 200, 0) if lab else (220, 0, 0), outline=(255, 255, 255),
                  width=max(1, r // 3))
    return np.asarray(im)


def render(predictor: Predictor, s: DemoSession, out_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                             list[str], str]:
    """Predict with the session's prompts -> (overlay RGB, map L, cut-out RGBA, download paths, status).

    The downloads are ``STEM_saliency.png``, ``STEM_mask.png``, ``STEM_cutout.png``, ``STEM_overlay.png``.
    """
    pts = np.array(s.points, dtype=np.float64) if s.points else None
    lbl = np.array(s.labels) if s.labels else None
    pred: Prediction = predictor.predict(points=pts, labels=lbl, box=s.box)
    sal = pred.to_uint8()
    mask = to_mask(sal)
    overlay = _markers(draw_overlay(s.image, mask), s)
    cut = cutout(s.image, sal)
    arrays = (sal, mask.astype(np.uint8) * 255, cut, overlay)
    paths = [out_dir / f"{s.stem}_{kind}.png" for kind in _OUTPUTS]
    for path, arr in zip(paths, arrays, strict=True):
        atomic_save_image(Image.fromarray(arr), path)
    status = f"{s.describe()}; mask {100 * mask.mean():.1f}% of the image"
    if pred.iou is not None:
        status += f"; predicted IoU {pred.iou:.3f}"
    if s.note:
        status += f" ({s.note})"
    return overlay, sal, cut, [str(p) for p in paths], status


class _App:
    """Handlers shared by all sessions; one lock: the predictor caches one image embedding at a time.

    `upload` / `remove` return (state, image, overlay, map, cut-out, downloads, status); `click` / `clear`
    return the same without the image. A session without an image clears every output and refuses clicks.
    """

    def __init__(self, predictor: Predictor, out_root: Path):
        self.predictor, self.out_root, self.lock = predictor, out_root, threading.Lock()
        self.current = ""  # the session key whose image the predictor holds

    def _run(self, s: DemoSession) -> tuple[Any, ...]:
        folder = self.out_root / s.key
        with self.lock:
            if self.predictor.orig_hw is None or self.current != s.key:
                self.predictor.set_image(s.image)
                self.current = s.key
            try:
                return (s, *render(self.predictor, s, folder))
            except SodError as err:
                return (s, None, None, None, None, f"error: {err}")

    def upload(self, path: str | os.PathLike | None, s: DemoSession | None) -> tuple[Any, ...]:
        """A new file: read it (or refuse it with one sentence), reset prompts and embedding, predict."""
        s = DemoSession() if s is None else s
        s.forget()
        if path is None:
            return (s, None, None, None, None, None, "upload an image")
        try:
            image, note = load_upload(path)
        except SodError as err:
            return (s, None, None, None, None, None, f"error: {err}; upload another image")
        s.image, s.note, s.stem, s.key = image, note, _safe_stem(Path(path).name), uuid.uuid4().hex
        out = self._run(s)
        return (out[0], image, *out[1:])

    def remove(self, s: DemoSession | None) -> tuple[Any, ...]:
        """The image was removed from the upload panel: forget it and clear every output."""
        s = DemoSession() if s is None else s
        s.forget()
        return (s, None, None, None, None, None, "image removed: upload an image")

    def click(self, mode: str, s: DemoSession | None, evt: Any) -> tuple[Any, ...]:
        if s is None or s.image is None:
            return (s, None, None, None, None, NO_IMAGE)
        h, w = s.image.shape[:2]
        x, y = (int(round(v)) for v in evt.index[:2])
        x, y = min(max(x, 0), w - 1), min(max(y, 0), h - 1)
        if mode == MODES[2]:
            if s.corner is None:
                s.corner = (x, y)
            else:
                (x0, y0), s.corner = s.corner, None
                x0, x1 = sorted((x0, x)) if x0 != x else (max(0, x - 1), min(w, x + 1))
                y0, y1 = sorted((y0, y)) if y0 != y else (max(0, y - 1), min(h, y + 1))
                s.box = (x0, y0, x1, y1)
        else:
            s.points.append((x, y))
            s.labels.append(1 if mode == MODES[0] else 0)
        return self._run(s)

    def clear(self, s: DemoSession | None) -> tuple[Any, ...]:
        if s is None or s.image is None:
            return (s, None, None, None, None, NO_IMAGE)
        s.clear()
        return self._run(s)


def build_demo(predictor: Predictor, out_root: str | Path | None = None, title: str = "sam2sod demo") -> Any:
    """The Gradio Blocks app (not launched). `out_root`: where the download PNGs go (a new temp folder)."""
    gr = _gradio()
    root = Path(out_root) if out_root is not None else Path(tempfile.mkdtemp(prefix="sam2sod-demo-"))
    prepare_output_dir(root, overwrite=False, inputs=[], command="demo")
    app = _App(predictor, root)
    panel = 340  # display height of the image panels, px
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\nUpload an image file; click the image (or the overlay) to add prompts, then "
                    f"download the PNGs. Images above {DISPLAY_PIXELS / 1e6:.0f} megapixels are downscaled; "
                    f"above {MAX_PIXELS / 1e6:.0f} they are refused."
                    + ("" if predictor.pretrained else f"\n\n{RANDOM_INIT}"))
        state = gr.State(None)
        upload = gr.File(label="upload an image (PNG, JPEG, ...)", file_count="single", type="filepath",
                         elem_id="upload", height=90)
        with gr.Row():
            view = gr.Image(label="image (click: add a prompt)", interactive=False, elem_id="input-image",
                            format="png", height=panel)
            over = gr.Image(label="mask contour + prompts (click: add a prompt)", interactive=False,
                            elem_id="overlay", format="png", height=panel)
        with gr.Row():
            mode = gr.Radio(list(MODES), value=MODES[0], label="a click adds", elem_id="mode")
            clear = gr.Button("clear prompts", elem_id="clear")
        status = gr.Textbox(label="status", interactive=False, elem_id="status")
        with gr.Row():
            sal = gr.Image(label="saliency map", interactive=False, elem_id="saliency", format="png", height=panel)
            cut = gr.Image(label="cut-out (saliency as alpha)", interactive=False, image_mode="RGBA",
                           elem_id="cutout", format="png", height=panel)
        files = gr.File(label="download PNGs", file_count="multiple", interactive=False, elem_id="downloads")
        outputs = [state, over, sal, cut, files, status]
        quiet = {"show_progress_on": [status]}  # the previous result stays visible while the next is computed

        def on_click(m: str, s: DemoSession | None, evt: Any) -> tuple[Any, ...]:
            return app.click(m, s, evt)

        on_click.__annotations__["evt"] = gr.SelectData  # a real class: Gradio passes the click event

        upload.upload(app.upload, [upload, state], [state, view, *outputs[1:]], **quiet)
        upload.clear(app.remove, [state], [state, view, *outputs[1:]], **quiet)
        view.select(on_click, [mode, state], outputs, **quiet)
        over.select(on_click, [mode, state], outputs, **quiet)
        clear.click(app.clear, [state], outputs, **quiet)
    return demo


def _gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise SodError("the demo needs gradio: pip install 'sam2sod[demo]' (or pip install gradio)") from None
    return gr


def check_address(host: str, port: int) -> None:
    """SodError unless `port` is in 1..65535 and `host`:`port` can be listened on (checked by binding once)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise SodError(f"--port must be an integer in 1..65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        raise SodError(f"--host {host!r} is not a valid host name or IP address") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no conflict
        try:
            sock.bind(addr)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise SodError(f"port {port} is in use on {host}: stop what listens there or pick another "
                               "--port") from None
            if err.errno in (errno.EACCES, errno.EPERM):
                raise SodError(f"port {port} needs administrator rights: use a port above 1023") from None
            kind = "IP address" if _is_ip(host) else "host name"
            raise SodError(f"--host {host!r} is not an address of this machine ({kind}; {err.strerror})") from None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def launch(checkpoint: str | Path, port: int = 7860, host: str = "127.0.0.1", device: str = "auto",
           base_checkpoint: str | None = None, block: bool = True) -> Any:
    """Load the model and serve the demo on http://HOST:PORT (blocks until Ctrl-C unless `block` is False).

    The host and port are checked (`check_address`) before the model loads or Gradio starts.
    """
    _gradio()
    check_address(host, port)
    predictor = Predictor.from_pretrained(checkpoint, device=device, base_checkpoint=base_checkpoint)
    demo = build_demo(predictor)
    print(f"sam2sod demo on http://{host}:{port} (Ctrl-C stops it)", flush=True)
    try:
        demo.launch(server_name=host, server_port=int(port), show_error=True, ssr_mode=False, quiet=True,
                    prevent_thread_lock=not block)
    except OSError as err:  # taken between the check and the start
        raise SodError(f"port {port} is in use on {host}: pick another --port") from err
    return demo
