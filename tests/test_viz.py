"""The pipelines are explorable in kedro-viz: ``kedro viz build`` writes a static site, and a
headless Chromium renders from it every node, dataset layer and tag of the project.

Needs Debian's chromium: ``scripts/install-chromium.sh`` (run here when chromium is missing)
installs it. ``VIZ_SCREENSHOT=docs/pipeline-graph.png pytest tests/test_viz.py`` also refreshes
the screenshot in the docs.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from kedro.framework.startup import bootstrap_project
from PIL import Image

from chest_xray.pipeline_registry import ON_DEMAND
from chest_xray.pipelines.fold_count import DEFAULT_FOLDS
from tests.conftest import REPO, copy_project_files

pytestmark = pytest.mark.slow

# The layers of conf/base/catalog.yml, in the order the flowchart stacks them.
# "inference": the packaged model and what using it writes. It comes after "reporting":
# packaging reads the evaluation report, and kedro-viz draws no layer at all when one
# dataset flows back into an earlier layer.
LAYERS = ["raw", "intermediate", "primary", "models", "model_output", "reporting", "inference"]
TAGS = {"preprocessing", "training", "evaluation", "inference", "cross_validation"}

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1600,1000",
    # Virtual time runs as fast as the page lets it and waits for its fetches: the API JSON,
    # the layout and the graph's fade-in all finish inside this budget (~4 s of real time).
    "--virtual-time-budget=20000",
)

# Kedro-Viz keeps its settings in localStorage["KedroViz"]; this page (served next to the
# site, so same origin) writes the JSON in its #fragment there and opens the site.
PREFS_PAGE = """<!doctype html><script>
localStorage.setItem("KedroViz", decodeURIComponent(location.hash.slice(1)));
location.replace("./");
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed by scripts/install-chromium.sh when it is missing."""
    found = shutil.which("chromium")
    if found is None:
        script = REPO / "scripts" / "install-chromium.sh"
        subprocess.run(["bash", str(script)], check=False, timeout=600)  # it never fails
        found = shutil.which("chromium")
    if found is None:
        pytest.skip(
            "chromium is missing and scripts/install-chromium.sh could not install it "
            "(it needs root and apt-get): install Debian's chromium to run this test"
        )
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This project's conf/ and pyproject.toml in an empty folder (as conftest's
    ``kedro_project``, but once for the module), with the site of ``kedro viz build`` in
    build/."""
    project = tmp_path_factory.mktemp("viz") / "project"
    copy_project_files(project)
    bootstrap_project(project)

    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
        check=False,
        cwd=project,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    # It reports a failed build but exits 0 anyway: judge it by what it wrote.
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "Success!" in log, log
    for page in ("index.html", "api/main", "api/pipelines/__default__"):
        assert (project / "build" / page).is_file(), f"build/{page} missing\n{log}"
    (project / "build" / "_prefs.html").write_text(PREFS_PAGE)
    return project


@pytest.fixture(scope="module")
def expected_nodes(project: Path) -> dict[str, set[str]]:
    """The node names of every registered pipeline, from the registry itself."""
    from kedro.framework.project import pipelines

    nodes = {name: {node.name for node in pipe.nodes} for name, pipe in pipelines.items()}
    assert {"__default__", "data_processing", "training", "evaluation", "inference"} <= set(nodes)
    always = [names for name, names in nodes.items() if name not in ON_DEMAND]
    assert nodes["__default__"] == set().union(*always)
    assert {"join_metadata", "preprocess_images", "split_dataset"} <= nodes["data_processing"]
    assert {"train_model", "plot_training_curves"} <= nodes["training"]
    assert {"predict", "evaluate"} <= nodes["evaluation"]
    return nodes


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(project: Path) -> Iterator[str]:
    """The built site, served over HTTP from 127.0.0.1 on a free port while the module runs
    (it fetches api/ JSON, which file:// pages may not)."""
    handler = functools.partial(_QuietHandler, directory=str(project / "build"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def with_settings(site: str, **settings: object) -> str:
    """The URL that opens the site with these Kedro-Viz settings (as if chosen in the UI)."""
    return f"{site}_prefs.html#{quote(json.dumps(settings))}"


def chromium_run(chromium: str, profile: Path, *args: str) -> str:
    """Run headless chromium with a fresh profile; its stdout."""
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def graph_task_nodes(dom: str) -> set[str]:
    """The task nodes drawn in the flowchart (the sidebar lists them even before it is)."""
    tags = re.findall(r"<g [^>]*>", dom)
    return {
        match.group(1)
        for tag in tags
        if "pipeline-node--task" in tag
        and (match := re.search(r'data-node-fullname="([^"]+)"', tag))
    }


def test_default_view_shows_every_node_layer_and_tag(
    chromium: str, site: str, expected_nodes: dict[str, set[str]], tmp_path: Path
) -> None:
    dom = chromium_run(chromium, tmp_path / "profile", "--dump-dom", site)

    selector = re.search(r'dropdown__label"><span>([^<]+)</span>', dom)
    assert selector is not None and selector.group(1) == "__default__"
    options = set(re.findall(r'class="menu-option__content" title="([^"]+)"', dom))
    assert set(expected_nodes) <= options  # every pipeline can be picked

    drawn = graph_task_nodes(dom)
    for pipeline, names in expected_nodes.items():
        if pipeline in ON_DEMAND:  # not in __default__: viewed alone below
            continue
        assert names <= drawn, f"{pipeline} nodes not drawn: {sorted(names - drawn)}"
    assert drawn == expected_nodes["__default__"]

    assert "pipeline-flowchart__layer-names--visible" in dom
    assert re.findall(r'data-id="layer-label--([^"]+)"', dom) == LAYERS

    start = dom.index("filters-section--type-tag")
    tag_filters = dom[start : dom.index("</ul>", start)]
    assert set(re.findall(r'<label for="([^"]+)" class="toggle-control', tag_filters)) == {
        "tag",  # the section's own "all tags" toggle
        *TAGS,
    }


@pytest.mark.parametrize("pipeline", ["data_processing", "training", "evaluation", "inference"])
def test_each_pipeline_can_be_viewed_alone(
    chromium: str,
    site: str,
    expected_nodes: dict[str, set[str]],
    pipeline: str,
    tmp_path: Path,
) -> None:
    url = with_settings(site, pipeline={"active": pipeline})
    dom = chromium_run(chromium, tmp_path / "profile", "--dump-dom", url)

    selector = re.search(r'dropdown__label"><span>([^<]+)</span>', dom)
    assert selector is not None and selector.group(1) == pipeline
    assert graph_task_nodes(dom) == expected_nodes[pipeline]


def test_cross_validation_shows_each_fold_as_one_collapsed_namespace(
    chromium: str, site: str, expected_nodes: dict[str, set[str]], tmp_path: Path
) -> None:
    url = with_settings(site, pipeline={"active": "cross_validation"})
    dom = chromium_run(chromium, tmp_path / "profile", "--dump-dom", url)

    folds = {name.split(".")[0] for name in expected_nodes["cross_validation"] if "." in name}
    assert folds == {f"fold_{i}" for i in range(1, DEFAULT_FOLDS + 1)}
    # Collapsed, a fold is one node of its own; its train_model, predict ... are not drawn.
    assert graph_task_nodes(dom) == {
        "assign_folds",
        "aggregate_folds",
        "plot_fold_roc_curves",
        "predict_with_fold_models",
        "evaluate_fold_ensemble",
    }
    tags = re.findall(r"<g [^>]*>", dom)
    drawn_folds = {
        match.group(1)
        for tag in tags
        if "pipeline-node--modularPipeline" in tag
        and (match := re.search(r'data-node-fullname="([^"]+)"', tag))
    }
    assert drawn_folds == folds


def test_screenshot_shows_the_graph(chromium: str, site: str, tmp_path: Path) -> None:
    """The flowchart of __default__ at 2x, with the feature tour, the minimap and the
    element-type filters closed (so that the tag filters show)."""
    screenshot = tmp_path / "pipeline-graph.png"
    url = with_settings(
        site,
        showFeatureHints=False,
        visible={"miniMap": False},
        groupsCollapsed={"elementType": True},
    )
    chromium_run(
        chromium,
        tmp_path / "profile",
        "--force-device-scale-factor=2",
        f"--screenshot={screenshot}",
        url,
    )

    with Image.open(screenshot) as image:
        assert image.size == (3200, 2000)
        # The graph pane (right of the sidebar and the layer names; the top strip holds the
        # version) is background but for the graph: a loading page has only a small spinner
        # in its middle, a rendered flowchart spans most of the pane's height.
        grey = image.convert("L")
        width, height = grey.size
        pane = grey.crop((int(width * 0.45), int(height * 0.05), width, height))
        histogram = pane.histogram()
        background = max(range(256), key=histogram.__getitem__)
        ink = pane.point(lambda value: 255 if abs(value - background) > 30 else 0)
        box = ink.getbbox()
        assert box is not None, "the graph pane is empty"
        assert box[3] - box[1] > 0.5 * pane.height, f"graph not rendered (ink box {box})"
        assert box[2] - box[0] > 0.2 * pane.width, f"graph not rendered (ink box {box})"

    if target := os.environ.get("VIZ_SCREENSHOT"):
        # 128 flat colours look the same in this UI and take 40 % of the bytes.
        with Image.open(screenshot) as image:
            flat = image.convert("RGB").quantize(128, dither=Image.Dither.NONE)
        flat.save(target, optimize=True)
