"""``gains demo``: the main job end to end on generated data, no network, no real data.

Until training lands this runs the GAMM stage: one synthetic set per CTO kind (overlapping cells,
touching nuclei, crossing chromosomes), their GA maps with the matching variant, PNG previews and an
index page that shows them.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from gains.atomic import atomic_write

log = logging.getLogger("gains.demo")

# scene kind -> GAMM variant that fits it
PLAN = {"overlap": "isbi", "touch": "nuclei", "cross": "chrom"}


def run_demo(out: str | Path, n: int = 12, size: int = 256, seed: int = 0, previews: int = 3) -> Path:
    """Run the demo into ``out``; returns the path of its ``index.html``."""
    from gains.data.synth import write_synthetic
    from gains.gamm import GammParams, GammStore, run_gamm
    from gains.visualize import gamm_previews

    out = Path(out)
    rows = []
    for kind, variant in PLAN.items():
        data = out / f"synthetic_{kind}"
        ann = write_synthetic(kind, n, size, seed, data, overwrite=True)
        params = GammParams.for_variant(variant, target_category=1)
        store = out / f"gamm_{kind}"
        run = run_gamm(ann, data / "images", params, out=store, workers=2, overwrite=True, progress=False)
        log.info("%s: %d maps of %d images in %.2f s (%s variant)", kind, run.n_maps, run.n_images, run.seconds,
                 variant)
        figs = gamm_previews(ann, data / "images", GammStore(store).load, params.ga_factor, previews,
                             out / "figures" / kind)
        rows.append((kind, variant, run, figs))
    page = ["<!doctype html><meta charset='utf-8'><title>gains demo</title>",
            "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}img{width:100%}</style>",
            "<h1>gains demo: GA maps of synthetic CTO scenes</h1>",
            "<table border=1 cellpadding=4><tr><th>scene</th><th>variant</th><th>images</th><th>maps</th>"
            "<th>seconds</th><th>sanitised</th></tr>"]
    for kind, variant, run, _ in rows:
        page.append(f"<tr><td>{kind}</td><td>{variant}</td><td>{run.n_images}</td><td>{run.n_maps}</td>"
                    f"<td>{run.seconds:.2f}</td><td>{run.n_nan + run.n_zero}</td></tr>")
    page.append("</table>")
    for kind, _, _, figs in rows:
        page.append(f"<h2>{html.escape(kind)}</h2>")
        page += [f"<img src='{html.escape(str(f.relative_to(out)))}' alt='{kind}'>" for f in figs]
    index = out / "index.html"
    atomic_write(index, lambda fh: fh.write("\n".join(page).encode()))
    return index
