"""The station's page in a real headless Chromium: cards, grid, images, live updates, reviews, offline."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from birdstream.messages import StreamStatus
from tests.support.browser import chromium, requested_urls
from tests.web.conftest import Served, http, sighting_events

pytestmark = pytest.mark.slow


def jpeg(state_dir: Path, rel: str, colour: tuple[int, int, int]) -> str:
    path = state_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return rel


def wait_for(driver: Any, script: str, timeout: float = 20.0) -> Any:
    """Poll a JavaScript expression in the page until it is truthy (returned)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script("return " + script),
                                                                     f"page condition: {script}")


def counts(driver: Any) -> dict[str, int]:
    return driver.execute_script(
        "var o = {}; document.querySelectorAll('#counts li[data-species]').forEach(function (li) {"
        " o[li.dataset.species] = +li.querySelector('.count').textContent; }); return o;")


def fill(served: Served) -> list[list[dict]]:
    now = time.time()
    served.site.streams = lambda: [StreamStatus("feeder", "running", fps=2.0, last_frame_at=now, reconnects=1)]
    red = jpeg(served.state_dir, "snapshots/feeder/red.jpg", (200, 30, 30))
    blue = jpeg(served.state_dir, "snapshots/feeder/blue.jpg", (30, 60, 200))
    sightings = [sighting_events(now - 900, species="Scarlet Tanager", snapshot=red),
                 sighting_events(now - 600, species="Indian Roller", snapshot=blue),
                 sighting_events(now - 300, species="Indian Roller", snapshot=blue)]
    served.add([e for s in sightings for e in s])
    return sightings


def test_the_page_shows_updates_and_reviews_without_leaving_the_station(served: Served) -> None:
    fill(served)
    with chromium() as driver:
        driver.get(served.base + "/")
        assert wait_for(driver, "document.querySelectorAll('#cards .card').length") == 3
        wait_for(driver, "Array.from(document.querySelectorAll('#cards img')).every(i => i.complete && "
                         "i.naturalWidth === 320)")
        assert counts(driver) == {"Indian Roller": 2, "Scarlet Tanager": 1}
        grid = driver.execute_script("return Array.from(document.querySelectorAll('#grid tbody tr')).map("
                                     "r => Array.from(r.querySelectorAll('td')).reduce((a, c) => a + (+c.textContent), 0))")
        assert sorted(grid) == [1, 2]
        assert "feeder" in driver.find_element("id", "streams").text
        assert wait_for(driver, "document.querySelector('#streams img') && "
                                "document.querySelector('#streams img').naturalWidth") == 320
        driver.execute_script("window.notReloaded = true")

        # A new sighting appears without a reload.
        new = sighting_events(time.time() - 5, species="House Sparrow", n_updates=0)
        served.add(new)
        wait_for(driver, f"document.querySelector('.card[data-id=\"{new[0]['id']}\"]')")
        assert counts(driver)["House Sparrow"] == 1

        # A review click changes the counts (and the review is stored).
        driver.find_element("css selector", f'.card[data-id="{new[0]["id"]}"] button[data-verdict="false"]').click()
        wait_for(driver, "!document.querySelector('#counts li[data-species=\"House Sparrow\"]')")
        card = f'.card[data-id="{new[0]["id"]}"]'
        wait_for(driver, f"document.querySelector('{card}').classList.contains('false')")
        first = driver.find_element("css selector", "#cards .card[data-species='Indian Roller']")
        first.find_element("css selector", "input").send_keys("Scarlet Tanager")
        first.find_element("css selector", 'button[data-verdict="relabel"]').click()
        wait_for(driver, "+document.querySelector('#counts li[data-species=\"Scarlet Tanager\"] .count')"
                         ".textContent === 2")
        assert counts(driver) == {"Indian Roller": 1, "Scarlet Tanager": 2}
        assert driver.execute_script("return window.notReloaded") is True
        assert [r[2]["verdict"] for r in served.reviews] == ["false", "relabel"]

        # Every request went to the daemon itself: nothing from a CDN or elsewhere.
        urls = requested_urls(driver) + driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert urls and all(u.startswith(served.base + "/") or u.startswith("data:") for u in urls), urls

        driver.get(served.base + "/species/Indian%20Roller")
        assert "Indian Roller" in driver.find_element("tag name", "h1").text
        assert len(driver.find_elements("css selector", ".bars .bar")) == 30
        wait_for(driver, "document.querySelectorAll('.cards img').length > 0 && "
                         "Array.from(document.querySelectorAll('.cards img')).every(i => i.naturalWidth === 320)")


def test_the_page_is_light_and_dates_navigate(served: Served) -> None:
    fill(served)
    weight = sum(len(http(served.base + path)[2]) for path in ("/", "/static/app.js", "/static/style.css"))
    assert weight < 300_000
    with chromium() as driver:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # a phone
                               {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
        driver.get(served.base + "/")
        wait_for(driver, "document.querySelectorAll('#cards .card').length === 3")
        assert driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]") == [390, 390]
        driver.find_element("css selector", "nav.days a").click()
        wait_for(driver, "location.search.startsWith('?date=')")
        assert driver.find_elements("css selector", "#cards .card") == []
        assert "No sightings on this day" in driver.find_element("id", "cards").text
