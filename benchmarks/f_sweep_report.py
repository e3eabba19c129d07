"""What benchmarks/f_sweep.py writes from its result: the Markdown table, the plot, the samples figure."""

from __future__ import annotations

import json
import math
from pathlib import Path


def table(result: dict) -> str:
    """The sweep as Markdown: the command and budget, then one row per f."""
    lines = [
        f"`{result['command']}`",
        "",
        f"Budget: {result['budget_minutes']} min of wall clock per stage (autoencoder, LDM) and f, on "
        f"{result['machine']}; feature network `{result['feature_network']}`; evaluation: "
        f"`{result['eval_args']}`.",
        "",
        "| f | AE steps | AE min | PSNR | SSIM | rFID | LDM steps | LDM min | FID vs held-out along training "
        "| final FID vs held-out | FID vs train | floor | images / s |",
        "|" + "---|" * 13,
    ]
    for f, s in result["factors"].items():
        ae, last = s["ae_points"][-1], s["ldm_points"][-1]
        path = " → ".join(f"{p['fid_vs_test']:.3g}" for p in s["ldm_points"])
        cells = [f, ae["steps"], f"{ae['seconds'] / 60:.1f}", f"{last['psnr']:.2f}", f"{last['ssim']:.3f}"]
        cells += [
            f"{last['rfid']:.3g}",
            last["steps"],
            f"{sum(p['seconds'] for p in s['ldm_points']) / 60:.1f}",
        ]
        cells += [
            path,
            f"{last['fid_vs_test']:.4g}",
            f"{last['fid_vs_train']:.4g}",
            f"{last['floor_vs_test']:.3g}",
        ]
        cells += [f"{last['images_per_second']:.3g}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """Three panels: FID vs LDM training minutes, final FID vs throughput, rFID vs f."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 4))
    for f, s in result["factors"].items():
        minutes = [
            sum(p["seconds"] for p in s["ldm_points"][: i + 1]) / 60 for i in range(len(s["ldm_points"]))
        ]
        a.plot(minutes, [p["fid_vs_test"] for p in s["ldm_points"]], "o-", label=f"f = {f}")
        last = s["ldm_points"][-1]
        b.scatter(last["images_per_second"], last["fid_vs_test"], label=f"f = {f}")
        b.annotate(f"f={f}", (last["images_per_second"], last["fid_vs_test"]))
    factors = list(result["factors"])
    c.bar([str(f) for f in factors], [result["factors"][f]["ldm_points"][-1]["rfid"] for f in factors])
    a.set(xlabel="LDM training wall clock (min)", ylabel="FID vs held-out", title="FID vs training time")
    b.set(
        xscale="log",
        xlabel="sampling throughput (images / s)",
        ylabel="FID vs held-out",
        title="FID vs speed",
    )
    c.set(xlabel="f", ylabel="rFID (autoencoder)", title="reconstruction FID")
    a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def samples_figure(result: dict, work: Path, path: Path) -> None:
    """The first row (8 captions) of each f's last `hfldm eval` grid, one f per row, labelled."""
    from PIL import Image, ImageDraw

    rows = []
    for f, s in result["factors"].items():
        last = s["ldm_points"][-1]
        folder = work / f"f{f}" / f"eval-{last['steps']}"
        grid = Image.open(folder / "samples.png").convert("RGB")
        shown = min(32, json.loads((folder / "report.json").read_text())["num_samples"])  # eval's grid
        rows.append((f, last["steps"], grid.crop((0, 0, grid.width, grid.height // math.ceil(shown / 8)))))
    label = 90
    sheet = Image.new("RGB", (label + rows[0][2].width, sum(r.height for *_, r in rows)), "white")
    draw, y = ImageDraw.Draw(sheet), 0
    for f, steps, row in rows:
        sheet.paste(row, (label, y))
        draw.text((8, y + 20), f"f = {f}\n{steps} steps", fill="black")
        y += row.height
    sheet.save(path)
