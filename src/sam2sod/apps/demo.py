"""`sam2sod demo`: a Gradio app around `sam2sod.Predictor` (runs on CPU).

Upload an image: the prompt-free saliency map, the cut-out and an overlay appear. Clicking the image or
the overlay adds a foreground / background point, or (box mode) one box corner per click; every change
decodes the cached embedding again (the encoder runs once per image). The PNGs (map, mask, cut-out,
overlay) can be downloaded. Gradio is an optional extra: ``pip install 'sam2sod[demo]'``.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from sam2sod.atomic import atomic_save_image
from sam2sod.errors import SodError
from sam2sod.infer.formats import cutout, draw_overlay, to_mask
from sam2sod.infer.predictor import Prediction, Predictor
from sam2sod.outputs import prepare_output_dir

__all__ = ["MODES", "DemoSession", "build_demo", "launch", "render"]

MODES = ("foreground point", "background point", "box (2 clicks)")
RANDOM_INIT = ("**RANDOM INIT**: this model's SAM2 base has no pretrained weights; maps show what the pipeline "
               "does, not what SAM2 can do.")


@dataclass
class DemoSession:
    """One browser session: its image, prompts (original pixels) and download folder."""

    image: np.ndarray | None = None
    key: str = ""
    points: list[tuple[int, int]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[int, int, int, int] | None = None
    corner: tuple[int, int] | None = None

    def clear(self) -> None:
        self.points, self.labels, self.box, self.corner = [], [], None, None

    def describe(self) -> str:
        fg = sum(self.labels)
        parts = [f"{len(self.points)} point(s) ({fg} fg, {len(self.points) - fg} bg)"] if self.points else []
        if self.box is not None:
            parts.append(f"box {self.box}")
        if self.corner is not None:
            parts.append(f"box corner {self.corner}: click the opposite corner")
        return ", ".join(parts) or "prompt-free"


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
    """Predict with the session's prompts -> (overlay RGB, map L, cut-out RGBA, download paths, status)."""
    pts = np.array(s.points, dtype=np.float64) if s.points else None
    lbl = np.array(s.labels) if s.labels else None
    pred: Prediction = predictor.predict(points=pts, labels=lbl, box=s.box)
    sal = pred.to_uint8()
    mask = to_mask(sal)
    overlay = _markers(draw_overlay(s.image, mask), s)
    cut = cutout(s.image, sal)
    files = {"saliency.png": sal, "mask.png": mask.astype(np.uint8) * 255, "cutout.png": cut,
             "overlay.png": overlay}
    for name, arr in files.items():
        atomic_save_image(Image.fromarray(arr), out_dir / name)
    status = f"{s.describe()}; mask {100 * mask.mean():.1f}% of the image"
    if pred.iou is not None:
        status += f"; predicted IoU {pred.iou:.3f}"
    return overlay, sal, cut, [str(out_dir / n) for n in files], status


class _App:
    """Handlers shared by all sessions; one lock: the predictor caches one image embedding at a time."""

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

    def upload(self, image: np.ndarray | None, s: DemoSession | None) -> tuple[Any, ...]:
        s = DemoSession() if s is None else s
        if image is None:
            s.image = None
            return (s, None, None, None, None, "upload an image")
        s.image = np.ascontiguousarray(image[..., :3].astype(np.uint8))
        s.key = uuid.uuid4().hex
        s.clear()
        return self._run(s)

    def click(self, mode: str, s: DemoSession | None, evt: Any) -> tuple[Any, ...]:
        if s is None or s.image is None:
            return (s, None, None, None, None, "upload an image first")
        x, y = (int(round(v)) for v in evt.index[:2])
        if mode == MODES[2]:
            if s.corner is None:
                s.corner = (x, y)
            else:
                (x0, y0), s.corner = s.corner, None
                h, w = s.image.shape[:2]
                x0, x1 = sorted((x0, x)) if x0 != x else (max(0, x - 1), min(w, x + 1))
                y0, y1 = sorted((y0, y)) if y0 != y else (max(0, y - 1), min(h, y + 1))
                s.box = (x0, y0, x1, y1)
        else:
            s.points.append((x, y))
            s.labels.append(1 if mode == MODES[0] else 0)
        return self._run(s)

    def clear(self, s: DemoSession | None) -> tuple[Any, ...]:
        if s is None or s.image is None:
            return (s, None, None, None, None, "upload an image")
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
        gr.Markdown(f"# {title}\nUpload an image; click it (or the overlay) to add prompts, then download the "
                    "PNGs." + ("" if predictor.pretrained else f"\n\n{RANDOM_INIT}"))
        state = gr.State(None)
        with gr.Row():
            inp = gr.Image(label="image (click: add a prompt)", type="numpy", image_mode="RGB",
                           sources=["upload", "clipboard"], elem_id="input-image", format="png", height=panel)
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

        def on_click(m: str, s: DemoSession | None, evt: Any) -> tuple[Any, ...]:
            return app.click(m, s, evt)

        on_click.__annotations__["evt"] = gr.SelectData  # a real class: Gradio passes the click event

        inp.upload(app.upload, [inp, state], outputs)
        inp.select(on_click, [mode, state], outputs)
        over.select(on_click, [mode, state], outputs)
        clear.click(app.clear, [state], outputs)
    return demo


def _gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise SodError("the demo needs gradio: pip install 'sam2sod[demo]' (or pip install gradio)") from None
    return gr


def launch(checkpoint: str | Path, port: int = 7860, host: str = "127.0.0.1", device: str = "auto",
           base_checkpoint: str | None = None, block: bool = True) -> Any:
    """Load the model and serve the demo on http://HOST:PORT (blocks until Ctrl-C unless `block` is False)."""
    _gradio()
    if not 0 < int(port) < 65536:
        raise SodError(f"--port must be in 1..65535, got {port}")
    predictor = Predictor.from_pretrained(checkpoint, device=device, base_checkpoint=base_checkpoint)
    demo = build_demo(predictor)
    print(f"sam2sod demo on http://{host}:{port} (Ctrl-C stops it)", flush=True)
    demo.launch(server_name=host, server_port=int(port), show_error=True, ssr_mode=False, quiet=True,
                prevent_thread_lock=not block)
    return demo
