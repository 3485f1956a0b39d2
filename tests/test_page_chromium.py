"""The interactive page (npconv.explain.html) in headless Chromium, checked against the engine.

The page's JS restates the index rule (a browser cannot call NumPy); this test is what ties
it to npconv: for every output cell of several configurations, the highlighted input cells
(``data-pos``/``data-src``/``data-ch``), the output value and the hover text are compared with
:func:`explain_output` / :func:`explain_transposed_output`; the ``#formula`` sizes with
``ConvSpec.out_spatial``; the refusals with the engine's ``ValueError`` text.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make chromium``) and selenium: skipped
without them, except under ``CI`` where their absence fails.  One browser for the module.
"""

import re

import numpy as np
import pytest

from npconv.explain.footprint import explain_output, explain_transposed_output
from npconv.explain.html import DEFAULTS, PAGE_LIMITS, initial_controls, page, write_page
from helpers import require, require_executable
from npconv.spec import ConvSpec

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--window-size=1300,1000")

CONFIGS = {
    "5x5-k3-s1-p1": dict(input_size=(5, 5), kernel_size=3, stride=1, padding=1),
    "7x6-k3-s2-p1-d2": dict(input_size=(7, 6), kernel_size=3, stride=2, padding=1, dilation=2),
    "reflect-p2": dict(input_size=(5, 4), kernel_size=3, padding=2, padding_mode="reflect"),
    "circular": dict(input_size=(4, 5), kernel_size=(3, 2), stride=2, padding=2, padding_mode="circular"),
    "replicate": dict(input_size=(6, 5), kernel_size=(2, 3), stride=2, padding=2, dilation=2,
                      padding_mode="replicate"),
    "groups2-cin4-cout2": dict(input_size=(5, 5), kernel_size=3, padding=1, groups=2, in_channels=4,
                               out_channels=2),
    "reflect-groups3": dict(input_size=(5, 6), kernel_size=3, stride=2, padding=2, padding_mode="reflect",
                            groups=3, in_channels=3, out_channels=6),
    "transposed-s2-p1-op1": dict(input_size=(3, 4), kernel_size=3, stride=2, padding=1, transposed=True,
                                 output_padding=1),
    "transposed-groups-d2": dict(input_size=(4, 3), kernel_size=(2, 3), stride=3, padding=2, dilation=2,
                                 transposed=True, output_padding=2, groups=2, in_channels=4, out_channels=4),
}

# Everything the page shows about its current hover, in one round trip.
COLLECT = """
const cell = document.querySelector('#output .hl');
const pick = (sel, f) => [...document.querySelectorAll(sel)].map(f);
return {
  inputs: pick('#input [data-pos].hl', (n) => [Number(n.dataset.ch), n.dataset.pos, n.dataset.src]),
  outputs: pick('#output [data-out].hl', (n) => [Number(n.dataset.ch), n.dataset.out]),
  zero: pick('#zero [data-z].hl', (n) => n.dataset.zsrc).filter(Boolean),
  value: cell ? cell.textContent : null,
  detail: document.getElementById('detail').textContent,
};
"""
HOVER_ALL = """
const collect = new Function(arguments[0]);
const seen = {};
for (const cell of document.querySelectorAll('#output [data-out]')) {
  cell.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
  seen[cell.dataset.ch + '|' + cell.dataset.out] = collect();
}
return seen;
"""
SET_CONTROLS = """
for (const [id, value] of Object.entries(arguments[0])) {
  const node = document.getElementById(id);
  if (node.type === 'checkbox') node.checked = value; else node.value = String(value);
  node.dispatchEvent(new Event(node.tagName === 'SELECT' || node.type === 'checkbox' ? 'change' : 'input'));
}
"""


# ---- the browser --------------------------------------------------------------------
@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    why = "the page test (Debian: `make chromium`)"
    for program in (CHROMIUM, CHROMEDRIVER):
        require_executable(program, why)
    webdriver = require("selenium.webdriver", why)
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM  # with the driver's path too, Selenium Manager never runs
    for flag in FLAGS + (f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.get(write_page(tmp_path_factory.mktemp("page") / "page.html").resolve().as_uri())
    yield browser
    browser.quit()


def console_errors(driver) -> list:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def set_controls(driver, controls: dict) -> None:
    driver.execute_script(SET_CONTROLS, controls)


def controls_for(**overrides) -> dict:
    """Control values for a setting the engine may refuse (initial_controls would raise)."""
    base = initial_controls()
    base.update(overrides)
    return base


def formula_sizes(driver) -> tuple[int, int]:
    text = driver.find_element("id", "formula").text
    return tuple(int(re.search(rf"^{d}_out = .* = (-?\d+)$", text, re.M).group(1)) for d in "HW")


# ---- what the engine says -------------------------------------------------------------
def _at(index) -> str:
    return "" if index is None else ",".join(str(int(i)) for i in index)


def engine_explanations(c: dict) -> dict:
    """Every output's Explanation for control values c; input numbered 0..H*W-1, weights 1."""
    h, w, g = c["in_h"], c["in_w"], c["groups"]
    x = np.broadcast_to(np.arange(h * w, dtype=np.float64).reshape(h, w), (1, c["c_in"], h, w))
    kernel = (c["k_h"], c["k_w"])
    common = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=g)
    if c["transposed"]:
        weight = np.ones((c["c_in"], c["c_out"] // g) + kernel)
        explain = lambda i: explain_transposed_output(x, weight, i, output_padding=c["out_pad"], **common)  # noqa: E731
    else:
        weight = np.ones((c["c_out"], c["c_in"] // g) + kernel)
        explain = lambda i: explain_output(x, weight, i, padding_mode=c["mode"], **common)  # noqa: E731
    return {f"{oc}|{r},{q}": explain((0, oc, r, q)) for oc, r, q in np.ndindex(c["c_out"], *out_size(c))}


def out_size(c: dict) -> tuple[int, ...]:
    spec = ConvSpec.build((c["k_h"], c["k_w"]), c["stride"], c["padding"], c["dilation"], c["groups"],
                          c["mode"], c["transposed"], c["out_pad"] if c["transposed"] else 0)
    return spec.out_spatial((c["in_h"], c["in_w"]))


def engine_refusal(c: dict) -> str:
    with pytest.raises(ValueError) as refused:
        out_size(c)
    return str(refused.value)


def check_hover(seen: dict, key: str, e) -> None:
    expected = {(t.channel, _at(t.position), _at(t.source)) for t in e.terms}
    assert {tuple(cell) for cell in seen["inputs"]} == expected, key
    channel, out = key.split("|")
    assert seen["outputs"] == [[int(channel), out]], key
    assert seen["value"] == f"{e.value:g}", key
    assert e.sum_line() in seen["detail"], key
    if e.spec.transposed:  # the zero-inserted picture's window holds the same input cells
        assert set(seen["zero"]) == {_at(t.source) for t in e.terms}, key


# ---- the page without a browser -------------------------------------------------------
def test_page_is_one_self_contained_file():
    text = page()
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text and "<script>" in text
    assert not re.search(r"https?:|//cdn|@import|url\(|<script[^>]+src=|<link(?![^>]*data:)", text)


def test_write_page_validates_and_injects(tmp_path):
    path = write_page(tmp_path / "p.html", input_size=(7, 6), stride=2, padding_mode="reflect")
    blob = re.search(r'id="npconv-initial" type="application/json">(.*?)</script>', path.read_text()).group(1)
    assert '"in_h": 7' in blob and '"mode": "reflect"' in blob
    for bad in (dict(input_size=2, kernel_size=3, dilation=2), dict(stride=0), dict(padding=3, padding_mode="reflect",
                input_size=3), dict(stride=(1, 2)), dict(groups=2, in_channels=3), dict(input_size=40)):
        with pytest.raises(ValueError):
            write_page(tmp_path / "bad.html", **bad)
    with pytest.raises(TypeError):
        write_page(tmp_path / "bad.html", strides=2)
    assert not (tmp_path / "bad.html").exists()
    starts = initial_controls(**DEFAULTS)  # PyTorch's defaults, as `npconv visualize` starts
    assert (starts["stride"], starts["padding"], starts["dilation"], starts["groups"], starts["mode"],
            starts["transposed"], starts["out_pad"]) == (1, 0, 1, 1, "zeros", False, 0)


# ---- the page in Chromium ---------------------------------------------------------------
def test_loads_clean_with_the_page_limits(driver):
    assert console_errors(driver) == []
    maxima = driver.execute_script("return Object.fromEntries(arguments[0].map((id) => "
                                   "[id, Number(document.getElementById(id).max)]))", list(PAGE_LIMITS))
    assert maxima == PAGE_LIMITS


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_highlights_values_and_formula_match_the_engine(driver, config):
    from selenium.webdriver.common.action_chains import ActionChains

    controls = initial_controls(**config)
    set_controls(driver, controls)
    assert formula_sizes(driver) == out_size(controls)
    assert driver.find_elements("id", "error") == []
    explanations = engine_explanations(controls)
    seen = driver.execute_script(HOVER_ALL, COLLECT)  # every output cell, through mouseover events
    assert sorted(seen) == sorted(explanations)
    for key, e in explanations.items():
        check_hover(seen[key], key, e)
    cells = driver.find_elements("css selector", "#output [data-out]")
    for cell in (cells[-1], cells[0], cells[len(cells) // 2]):  # and a real mouse on a few
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
        ActionChains(driver, duration=0).move_to_element(cell).perform()
        key = f"{cell.get_attribute('data-ch')}|{cell.get_attribute('data-out')}"
        check_hover(driver.execute_script(COLLECT), key, explanations[key])
    assert console_errors(driver) == []


def test_formula_shows_the_arithmetic(driver):
    set_controls(driver, initial_controls(**CONFIGS["7x6-k3-s2-p1-d2"]))
    assert "H_out = floor((7 + 1 + 1 - 2*(3-1) - 1) / 2) + 1 = 3" in driver.find_element("id", "formula").text
    set_controls(driver, initial_controls(**CONFIGS["transposed-s2-p1-op1"]))
    assert "W_out = (4 - 1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 8" in driver.find_element("id", "formula").text


REFUSED = {
    "kernel-too-big": dict(in_h=2, in_w=2, k_h=3, k_w=3, dilation=2, padding=1),
    "kernel-too-big-p0": dict(in_h=2, in_w=5, k_h=3, k_w=3, dilation=2, padding=0),
    "kernel-5-on-3": dict(in_h=3, in_w=3, k_h=5, k_w=5, padding=0),
    "dilated-3-on-4": dict(in_h=6, in_w=4, k_h=3, k_w=3, dilation=3, padding=0),
    "reflect-pad>=size": dict(in_h=4, in_w=2, padding=2, mode="reflect"),
    "circular-wraps-twice": dict(in_h=2, in_w=5, k_h=1, k_w=1, padding=3, mode="circular"),
    "stride-0": dict(stride=0),
    "transposed-reflect": dict(transposed=True, mode="reflect"),
    "output_padding>=stride": dict(transposed=True, stride=2, out_pad=2),
    "transposed-too-small": dict(transposed=True, in_h=3, in_w=1, k_h=1, k_w=1, padding=1),
}


@pytest.mark.parametrize("overrides", REFUSED.values(), ids=REFUSED.keys())
def test_refusals_in_the_engines_words(driver, overrides):
    controls = controls_for(**overrides)
    set_controls(driver, controls)
    error = driver.find_element("id", "error")
    assert error.is_displayed()
    assert engine_refusal(controls) in error.text
    assert driver.find_elements("css selector", "#output [data-out]") == []
    assert console_errors(driver) == []


def test_the_worked_refusal_and_channel_rules(driver):
    set_controls(driver, controls_for(**REFUSED["kernel-too-big"]))
    assert "padded input 4 = 2 + 1 + 1 < effective kernel 5 = 2*(3-1)+1" in driver.find_element("id", "error").text
    assert driver.find_elements("css selector", '#input [data-pos="-1,-1"]')  # the input is still drawn
    set_controls(driver, controls_for(groups=2, c_in=3, c_out=2))
    assert "3 % 2 = 1" in driver.find_element("id", "error").text
    set_controls(driver, controls_for(in_h=""))
    assert "whole number" in driver.find_element("id", "error").text
    set_controls(driver, controls_for())
    assert driver.find_elements("id", "error") == [] and formula_sizes(driver) == (3, 3)
    assert console_errors(driver) == []


def test_typing_and_clicking_rerender(driver):
    from selenium.webdriver.support.ui import Select

    set_controls(driver, controls_for(padding=1))
    assert driver.title == "npconv: Conv2d, cell by cell"
    stride = driver.find_element("id", "stride")
    stride.clear()
    stride.send_keys("2")
    assert formula_sizes(driver) == (3, 3)
    Select(driver.find_element("id", "mode")).select_by_value("circular")
    assert driver.find_element("css selector", '#input [data-pos="-1,-1"]').get_attribute("data-src") == "4,4"
    assert not driver.find_element("id", "out_pad").is_enabled()
    driver.find_element("id", "transposed").click()
    assert driver.find_element("id", "out_pad").is_enabled()
    assert driver.title == "npconv: ConvTranspose2d, cell by cell" == "npconv: " + driver.find_element("id", "title").text
    assert 'Only "zeros" padding mode' in driver.find_element("id", "error").text
    Select(driver.find_element("id", "mode")).select_by_value("zeros")
    assert formula_sizes(driver) == (9, 9)  # (5-1)*2 - 2*1 + 1*(3-1) + 0 + 1
    assert console_errors(driver) == []


def test_initial_values_from_write_page(driver, tmp_path):
    initial = dict(input_size=(7, 6), kernel_size=(3, 2), stride=2, padding=1, dilation=2,
                   padding_mode="replicate", groups=2, in_channels=2, out_channels=4)
    driver.get(write_page(tmp_path / "initial.html", **initial).resolve().as_uri())
    values = driver.execute_script("return Object.fromEntries([...document.querySelectorAll('#controls [id]')]"
                                   ".map((n) => [n.id, n.type === 'checkbox' ? n.checked : n.value]))")
    expected = {k: v if isinstance(v, bool) else str(v) for k, v in initial_controls(**initial).items()}
    assert values == expected
    assert formula_sizes(driver) == out_size(initial_controls(**initial))
    assert len(driver.find_elements("css selector", "#input .chan")) == 2
    assert console_errors(driver) == []
