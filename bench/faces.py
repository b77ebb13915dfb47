"""Benchmark of face analysis on CPU: model loading, images per second, peak memory.

    python bench/faces.py                  # dlib HOG detector (the default)
    python bench/faces.py --detector haar  # OpenCV Haar cascade
    python bench/faces.py --iterations 20 --json results.json

Cases (all real photos from installed packages, so anyone can rerun them):

* ``1 face``: scikit-image's astronaut, 512x512;
* ``5 faces``: five real faces (astronaut and matplotlib's Grace Hopper, some mirrored)
  tiled into one 1400x280 image;
* ``1 face, 12 MP``: the astronaut upscaled to 4000x3000 JPEG, as a phone photo would be
  (decoding, shrinking and writing the annotated copy dominate here).

Reported: the first call's cost split into imports and model loading (measured in this
fresh process before anything else ran), then per case the mean latency and images per
second of the full ``analyze_faces`` call (decode, detect, emotion, age, annotated PNG),
plus a per-stage split on the already decoded photo. Memory: the tracemalloc peak of
Python/numpy allocations during the timed calls, and the process's resident set (current
after loading, and the high-water mark from /proc, which includes torch, dlib and ONNX
Runtime buffers that tracemalloc cannot see).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size in MB, from /proc/self/status."""
    values = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount = line.split(":")
                values[key] = int(amount.split()[0]) / 1024
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def build_photos(folder: Path) -> dict[str, Path]:
    import matplotlib
    import numpy as np
    from PIL import Image
    from skimage import data

    astronaut = data.astronaut()
    hopper = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB"))
    one = folder / "astronaut.png"
    Image.fromarray(astronaut).save(one)

    tiles = [astronaut[20:300, 80:360], hopper[80:400, 110:430]]
    size = 280
    canvas = Image.new("RGB", (size * 5, size), (128, 128, 128))
    for index in range(5):
        tile = Image.fromarray(tiles[index % 2]).resize((size, size))
        canvas.paste(tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if index >= 2 else tile, (index * size, 0))
    five = folder / "five_faces.png"
    canvas.save(five)

    large = folder / "astronaut_12mp.jpg"
    background = Image.new("RGB", (4000, 3000), (90, 90, 100))
    background.paste(Image.fromarray(astronaut).resize((2400, 2400), Image.Resampling.BICUBIC), (800, 300))
    background.save(large, quality=90)
    return {"1 face (512x512)": one, "5 faces (1400x280)": five, "1 face, 12 MP (4000x3000)": large}


def stage_times(analyzer, photo, min_face: int, repeats: int) -> dict[str, float]:
    """Mean milliseconds per stage on an already decoded photo."""
    from taller.vision.faces import _output_path, annotate

    totals = {"detect": 0.0, "emotion": 0.0, "age": 0.0}
    for _ in range(repeats):
        start = time.perf_counter()
        boxes = analyzer.detector.detect(photo.analysis, min_face * photo.analysis_scale)
        totals["detect"] += time.perf_counter() - start
        start = time.perf_counter()
        analyzer.emotion.predict(photo.analysis, boxes)
        totals["emotion"] += time.perf_counter() - start
        start = time.perf_counter()
        analyzer.age.predict(photo.analysis, boxes)
        totals["age"] += time.perf_counter() - start
    start = time.perf_counter()
    annotate(photo, [], _output_path(photo.path, None))
    out = {name: 1000 * value / repeats for name, value in totals.items()}
    out["annotate"] = 1000 * (time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=15, help="timed calls per case")
    parser.add_argument("--detector", choices=["dlib", "haar"], default="dlib")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the CI machine has 2 cores)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder of photos and outputs")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="taller-bench-faces-"))
    os.environ["TALLER_HOME"] = str(home)
    os.environ["TALLER_FACE_DETECTOR"] = args.detector
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rss_start, _ = rss_mb()

    start = time.perf_counter()
    import torch

    from taller.config import get_settings
    from taller.vision.faces import analyze_faces, get_analyzer
    from taller.vision.images import load_photo

    torch.set_num_threads(args.threads)
    import_s = time.perf_counter() - start

    start = time.perf_counter()
    analyzer = get_analyzer()
    load_s = analyzer.load()
    setup_s = time.perf_counter() - start
    rss_loaded, _ = rss_mb()

    photos = build_photos(home)
    first_call_start = time.perf_counter()
    analyze_faces(str(photos["1 face (512x512)"]))  # first call also imports LangGraph for progress events
    first_call_s = time.perf_counter() - first_call_start

    settings = get_settings()
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({args.threads} threads)",
        "backend": analyzer.backend,
        "iterations": args.iterations,
        "import_s": round(import_s, 2),
        "model_load_s": round(load_s, 2),
        "analyzer_setup_s": round(setup_s, 2),
        "first_analysis_after_load_s": round(first_call_s, 2),
        "rss_start_mb": round(rss_start, 1),
        "rss_after_load_mb": round(rss_loaded, 1),
        "cases": {},
    }
    tracemalloc.start()
    for name, path in photos.items():
        analyze_faces(str(path))  # warm-up for this size
        tracemalloc.reset_peak()
        latencies, found = [], 0
        for _ in range(args.iterations):
            start = time.perf_counter()
            out = analyze_faces(str(path))
            latencies.append(time.perf_counter() - start)
            found = out["face_count"]
        _, traced_peak = tracemalloc.get_traced_memory()
        mean = statistics.fmean(latencies)
        photo = load_photo(path)
        results["cases"][name] = {
            "faces_found": found,
            "mean_ms": round(1000 * mean, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            # The fastest call is the least disturbed by other jobs on a shared machine.
            "min_ms": round(1000 * min(latencies), 1),
            "images_per_s": round(1 / mean, 2),
            "tracemalloc_peak_mb": round(traced_peak / 2**20, 1),
            "stages_ms": {k: round(v, 1) for k, v in stage_times(analyzer, photo, settings.min_face_size, 3).items()},
        }
    tracemalloc.stop()
    results["rss_peak_mb"] = round(rss_mb()[1], 1)
    results["load_average_1min"] = round(os.getloadavg()[0], 1)

    print(f"# Face analysis benchmark ({results['machine']})")
    print(f"backend: {results['backend']}")
    print(
        f"first use: imports {results['import_s']} s, model loading {results['model_load_s']} s, "
        f"first analysis {results['first_analysis_after_load_s']} s; RSS {results['rss_start_mb']} -> "
        f"{results['rss_after_load_mb']} MB after loading, peak {results['rss_peak_mb']} MB"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("| case | faces | mean ms | min ms | images/s | detect / emotion / age / annotate ms | tracemalloc peak MB |")
    print("|---|---|---|---|---|---|---|")
    for name, case in results["cases"].items():
        stages = case["stages_ms"]
        print(
            f"| {name} | {case['faces_found']} | {case['mean_ms']} | {case['min_ms']} | {case['images_per_s']} | "
            f"{stages['detect']} / {stages['emotion']} / {stages['age']} / {stages['annotate']} | "
            f"{case['tracemalloc_peak_mb']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.keep:
        print(f"photos and annotated copies kept in {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
