"""For the Space tests: a tiny random pipeline folder (from _ldm_fixtures), and the app on a free port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from _ldm_fixtures import CAPTIONS, IMAGE_SIZE, class_pipeline, text_pipeline

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "space" / "app.py"
__all__ = ["APP", "CAPTIONS", "IMAGE_SIZE", "SpaceProcess", "running_space", "save_tiny_pipeline"]
__all__ += ["save_tiny_sr_pipeline", "save_tiny_inpaint_pipeline", "editor_value"]


def save_tiny_pipeline(folder: Path, class_conditional: bool = False) -> Path:
    """Save the pipeline tests' tiny text (or class) pipeline to `folder`, with an example_captions.txt of
    the first three CAPTIONS; returns `folder`."""
    (class_pipeline() if class_conditional else text_pipeline()).save_pretrained(folder)
    (folder / "example_captions.txt").write_text("\n".join(CAPTIONS[:3]) + "\n")
    return folder


def save_tiny_sr_pipeline(folder: Path) -> Path:
    """The tiny random super-resolution pipeline (_superres_fixtures, 2x) saved to `folder`, with one example
    low-resolution PNG in examples/."""
    from _superres_fixtures import low_res_images, sr_pipeline

    sr_pipeline().save_pretrained(folder)
    (folder / "examples").mkdir()
    low_res_images(1, size=8)[0].save(folder / "examples" / "example.png")
    return folder


def save_tiny_inpaint_pipeline(folder: Path) -> Path:
    """The tiny random inpainting pipeline (_inpaint_fixtures, 16 px) saved to `folder`, with one example
    image in examples/."""
    from _inpaint_fixtures import images, inpaint_pipeline

    inpaint_pipeline().save_pretrained(folder)
    (folder / "examples").mkdir()
    images(1)[0].save(folder / "examples" / "example.png")
    return folder


def editor_value(background, size: int = 64, box: tuple[int, int, int, int] = (16, 16, 48, 48)) -> dict:
    """An ImageEditor value as Gradio's editor hands it over: the background enlarged to the `size` canvas
    and one RGBA layer with an opaque square painted at `box` (left, top, right, bottom)."""
    import PIL.Image
    import PIL.ImageDraw

    layer = PIL.Image.new("RGBA", (size, size), (0, 0, 0, 0))
    PIL.ImageDraw.Draw(layer).rectangle(box, fill=(255, 0, 255, 255))
    return {
        "background": background.resize((size, size), PIL.Image.NEAREST),
        "layers": [layer],
        "composite": None,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SpaceProcess:
    """space/app.py started in a subprocess on 127.0.0.1 with HFLDM_MODEL=`model` (plus `env`). It starts at
    once (importing torch, diffusers and gradio takes a while); `url()` waits until it answers."""

    def __init__(self, model: Path, tmp: Path, **env: str):
        self.port = free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "HFLDM_MODEL": str(model),
            "HFLDM_HOST": "127.0.0.1",
            "HFLDM_PORT": str(self.port),
            "GRADIO_TEMP_DIR": str(tmp / "gradio"),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "HFLDM_SR_MODEL": "none",  # no Upscale tab unless a test gives a model
            "HFLDM_INPAINT_MODEL": "none",  # nor an Inpaint tab
            "HFLDM_SKETCH_MODEL": "none",  # nor a Sketch tab
            **env,
        }
        self.log = tmp / "space.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(APP)], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def url(self, timeout: float = 120.0) -> str:
        """The URL, once the app answers with HTTP 200; raises with its log if it exits or times out."""
        url, deadline = f"http://127.0.0.1:{self.port}/", time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"space/app.py exited with {self.proc.returncode}:\n{self.log.read_text()}"
                )
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return url
            if time.monotonic() > deadline:
                raise TimeoutError(f"space/app.py did not answer on {url}:\n{self.log.read_text()}")
            time.sleep(0.3)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@contextlib.contextmanager
def running_space(model: Path, tmp: Path, **env: str) -> Iterator[str]:
    """Run space/app.py (see SpaceProcess); yields its URL once it answers, stops it afterwards."""
    space = SpaceProcess(model, tmp, **env)
    try:
        yield space.url()
    finally:
        space.stop()
