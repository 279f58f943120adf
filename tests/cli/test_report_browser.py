"""Real reports opened in a real browser: Chromium headless through chromium-driver (Debian
packages ``chromium`` and ``chromium-driver``; ``.ci/run`` installs them when missing), with the
network off.

For a tabular, a sequential and a graph run produced by the CLI here, in both views (the released
``report.html`` and the steward's copy), the test checks that every plot container rendered an SVG
(no empty container, no plotting error), that the console logged no error, that the page asked for
nothing over the network, that the decision and every gate row from ``audit.json`` are on the page,
and that the released view draws no real-data series. Full-page screenshots are saved under
``test-artifacts/`` for a person to look at. ``synthgate report --format pdf`` is checked here too
(it prints through the same browser).

Without Chromium the module is skipped, unless ``SYNTHGATE_REQUIRE_BROWSER=1`` (set by ``.ci/run``),
where a missing browser fails it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from release.cli.main import cli

DATA = Path(__file__).parents[1] / "data"
GRAPH = DATA / "graph"
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("SYNTHGATE_REQUIRE_BROWSER") == "1"

if not (CHROMIUM and DRIVER):
    if REQUIRED:
        raise RuntimeError("SYNTHGATE_REQUIRE_BROWSER=1 but chromium and chromedriver are not both on PATH")
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)


def _run(ws: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args], catch_exceptions=False)


def _json(ws: Path, *args: str) -> dict:
    res = _run(ws, *args, "--json")
    assert res.exit_code == 0, res.output + res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, audited: Any) -> dict[str, Path]:
    """Run folders (audit.json, report.html, report-steward.html) of one run per data kind."""
    out = {"tabular": audited.ws / "runs" / (audited.root / "run_id").read_text()}
    root = tmp_path_factory.mktemp("browser")
    ws = root / "ws"
    policy = yaml.safe_load((DATA / "test_policy.yaml").read_text())
    policy["budget"].update(total_epsilon=20.0, per_release_epsilon=4.0)
    (root / "policy.yaml").write_text(yaml.safe_dump(policy))
    assert _run(ws, "init", "--policy", str(root / "policy.yaml")).exit_code == 0
    for name in ("karate_club_edges.csv", "karate_club_nodes.csv"):
        shutil.copy(GRAPH / name, root / name)
    shutil.copy(DATA / "pbcseq.csv", root / "pbcseq.csv")
    _json(ws, "register", "karate", str(root / "karate_club_edges.csv"), "--nodes", str(root / "karate_club_nodes.csv"),
          "--schema", str(GRAPH / "karate_schema.yaml"), "--kind", "graph")
    _json(ws, "register", "pbc", str(root / "pbcseq.csv"), "--schema", str(DATA / "pbcseq_schema.yaml"),
          "--kind", "sequential")
    for kind, source, generator in (("graph", "karate", "dpdegree"), ("sequential", "pbc", "dpmarkov")):
        run_id = _json(ws, "synthesize", source, "--generator", generator, "--epsilon", "4", "--seed", "5")["run_id"]
        res = _run(ws, "audit", run_id)
        assert (ws / "runs" / run_id / "audit.json").is_file(), res.output + res.stderr
        out[kind] = ws / "runs" / run_id
    out["_ws"] = ws
    return out


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                 "--window-size=1280,900", "--proxy-server=http://127.0.0.1:9"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    drv = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=opts)
    # the network off at the protocol level too: any request other than file: and data: fails
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.emulateNetworkConditions",
                        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    yield drv
    drv.quit()


def _open(drv: Any, page: Path) -> dict[str, Any]:
    drv.get_log("browser")
    drv.get_log("performance")
    drv.get(page.resolve().as_uri())
    deadline = time.time() + 60
    while time.time() < deadline:
        done = drv.execute_script("return document.body && document.body.getAttribute('data-plots-done')")
        if done is not None:
            break
        time.sleep(0.2)
    state = drv.execute_script("""
        var plots = Array.from(document.querySelectorAll('.plot'));
        return {
          done: document.body.getAttribute('data-plots-done'),
          plots: plots.map(function(p){ return {id: p.id, key: p.getAttribute('data-plot'),
             rendered: p.getAttribute('data-rendered'), svgs: p.querySelectorAll('svg.main-svg').length,
             marks: p.querySelectorAll('.trace, .hm, .bars .point, .scatterlayer path, .heatmaplayer image').length,
             height: p.getBoundingClientRect().height, legend: Array.from(p.querySelectorAll('.legendtext'))
               .map(function(t){ return t.textContent; })}; }),
          text: document.body.innerText,
          gateRows: Array.from(document.querySelectorAll('table.gate tbody tr')).map(function(r){
             return r.querySelector('th').childNodes[0].textContent; }),
          headings: Array.from(document.querySelectorAll('h1, h2, h3, h4')).map(function(h){
             return Number(h.tagName.substring(1)); }),
          tablesWithoutHeaders: Array.from(document.querySelectorAll('table')).filter(function(t){
             return t.querySelectorAll('th').length === 0; }).length,
          height: document.documentElement.scrollHeight
        };""")
    state["console"] = [e for e in drv.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
    requests = []
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            requests.append(msg["params"]["request"]["url"])
    state["requests"] = requests
    return state


def _screenshot(drv: Any, name: str, height: int) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    drv.set_window_size(1280, min(max(900, height + 40), 16000))
    time.sleep(0.5)  # plotly relayouts on resize
    path = ARTIFACTS / name
    drv.save_screenshot(str(path))
    drv.set_window_size(1280, 900)
    return path


EXPECTED_PLOTS = {
    "tabular": {"columns", "pair_trends", "roc", "anonymeter", "utility"},
    "sequential": {"lengths", "gaps", "transitions", "event_columns", "anonymeter"},
    "graph": {"degrees", "node_columns", "roc", "graph_components"},
}


@pytest.mark.parametrize("kind", ["tabular", "sequential", "graph"])
@pytest.mark.parametrize("view", ["release", "steward"])
def test_report_renders_offline_with_every_plot_and_gate_row(runs: dict[str, Path], driver: Any, kind: str,
                                                             view: str) -> None:
    run_dir = runs[kind]
    doc = json.loads((run_dir / "audit.json").read_text())
    page = run_dir / ("report.html" if view == "release" else "report-steward.html")
    state = _open(driver, page)
    shot = _screenshot(driver, f"report-{kind}-{view}.png", state["height"])
    assert shot.stat().st_size > 10_000

    # nothing over the network: the page is self-contained
    remote = [u for u in state["requests"] if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert remote == []
    assert state["console"] == [], state["console"]

    # every plot rendered: an SVG with marks in each container, no container left empty or in error
    plots = state["plots"]
    assert plots and int(state["done"]) == len(plots)
    for p in plots:
        assert p["rendered"] == "yes", p
        assert p["svgs"] >= 1 and p["marks"] >= 1 and p["height"] > 100, p
    assert EXPECTED_PLOTS[kind] <= {p["key"] for p in plots}

    # the decision and every gate row from audit.json
    text = state["text"]
    assert "Can this be released?" in text
    assert ("Decision: PASS" if doc["gate"]["passed"] else "Decision: FAIL") in text
    assert state["gateRows"] == [c["name"] for c in doc["gate"]["checks"]]
    for c in doc["gate"]["checks"]:
        assert c["meaning"].split("(")[0].strip()[:60] in text
    assert "Methods appendix" in text and "Library versions" in text
    assert "(ε = 4" in text or "(ε = 1" in text  # the guarantee sentence

    # accessible structure: one h1, no heading skips a level, every table has headers
    levels = state["headings"]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:])), levels
    assert state["tablesWithoutHeaders"] == 0

    # the released view never draws a real-data series; the steward's copy does
    legends = {t for p in plots for t in p["legend"]}
    if view == "release":
        assert not any(t.startswith("real (training split)") for t in legends), legends
        assert "Steward's copy" not in text
    else:
        assert any(t.startswith("real (training split)") for t in legends), legends
        assert "Steward's copy: do not release." in text


def test_report_command_prints_pdf_through_chromium(runs: dict[str, Path], tmp_path: Path) -> None:
    ws = runs["_ws"]
    run_id = runs["graph"].name
    out = tmp_path / "report.pdf"
    info = _json(ws, "report", run_id, "--format", "pdf", "-o", str(out))
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and info["bytes"] == len(data) and info["format"] == "pdf"
    pages = data.count(b"/Type /Page") - data.count(b"/Type /Pages")
    assert pages >= 3, pages
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(out, ARTIFACTS / "report-graph.pdf")
