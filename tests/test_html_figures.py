"""The HTML report's figures are whole: each figure's key and notes lie inside its image (nothing drawn touches
an edge), and each image lies inside the page in Chromium (no sideways overflow, no container clipping it)."""

import base64
import io
import re

import pytest
from PIL import Image

from conftest import run_cli
from test_export import CHROMIUM, CHROMIUM_ARGS

# two shipped checkpoints, three sizes, the first 64 test images: a report with a SUBSET mark and the
# accuracy figure's style key below its axes
SWEEP = ["checkpoints/s4nd_iso_14.pt", "checkpoints/conv2d_iso_14.pt", "--test-res", "7,14,28", "--limit", "64",
         "--subset", "first", "--quiet"]
DATA_URI = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"')
WHITE = 250  # a grey level at or above this counts as background


@pytest.fixture(scope="module")
def html_page(tmp_path_factory):
    """OUT.html of `report --format html` on a small real sweep with a subset mark."""
    root = tmp_path_factory.mktemp("html_figures")
    done = run_cli("sweep", *SWEEP, "-o", root / "sweep", timeout=600)
    assert done.returncode == 0, done.stderr
    done = run_cli("report", root / "sweep", "-o", root / "report" / "small", "--format", "html", "--quiet",
                   timeout=300)
    assert done.returncode == 0, done.stderr
    return root / "report" / "small.html"


def figures(page) -> list[tuple[str, Image.Image]]:
    """(alt text, image) of every figure inlined in the page."""
    found = DATA_URI.findall(page.read_text(encoding="utf-8"))
    return [(alt, Image.open(io.BytesIO(base64.b64decode(data))).convert("L")) for alt, data in found]


def drawn_box(image: Image.Image) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of everything not background in a grey image."""
    return image.point(lambda v: 255 if v < WHITE else 0).getbbox()


def test_drawn_box_sees_a_mark_on_the_edge():
    image = Image.new("L", (40, 30), 255)
    assert drawn_box(image) is None
    image.putpixel((0, 12), 0)  # a key cut off at the left edge
    image.putpixel((20, 15), 0)
    assert drawn_box(image) == (0, 12, 21, 16)


@pytest.mark.slow
def test_every_figure_keeps_its_key_and_notes_inside_the_image(html_page):
    found = figures(html_page)
    alts = [alt for alt, _ in found]
    assert any("Accuracy" in alt for alt in alts) and all("SUBSET" in alt for alt in alts), alts
    for alt, image in found:
        left, top, right, bottom = drawn_box(image)
        width, height = image.size
        # a margin of white on every side: a style key or SUBSET line wider than the canvas touches the edges
        assert left > 0 and top > 0 and right < width and bottom < height, (alt, (left, top, right, bottom), image.size)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (.ci/run installs the apt package)")
@pytest.mark.parametrize("viewport_width", [1280, 800])
def test_every_figure_lies_inside_the_page_in_chromium(html_page, viewport_width, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport_width, "height": 900})
            page.goto(html_page.as_uri())
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            layout = page.evaluate(LAYOUT)
        finally:
            browser.close()
    assert layout["scrollWidth"] <= layout["clientWidth"], layout  # no sideways scrolling of the page
    assert len(layout["images"]) == len(figures(html_page)) >= 2
    for img in layout["images"]:
        assert img["complete"] and img["naturalWidth"] > 0 and img["width"] > 0, img
        assert 0 <= img["left"] and img["right"] <= layout["clientWidth"], img
        assert not img["clippedBy"], img  # no ancestor with overflow other than visible cuts part of it off


# The page's width and each image's box, with the first ancestor (if any) whose overflow cuts the image off.
LAYOUT = """() => {
  const doc = document.documentElement;
  const images = Array.from(document.images).map(img => {
    const r = img.getBoundingClientRect();
    let clippedBy = null;
    for (let el = img.parentElement; el && el !== doc && !clippedBy; el = el.parentElement) {
      const style = getComputedStyle(el), box = el.getBoundingClientRect();
      const clips = style.overflowX !== "visible" || style.overflowY !== "visible";
      if (clips && (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5
                    || r.bottom > box.bottom + 0.5)) clippedBy = el.tagName + "." + el.className;
    }
    return {alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth, width: r.width,
            left: r.left, right: r.right, clippedBy: clippedBy};
  });
  return {scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, images: images};
}"""
