"""Render each page of the dashboard to PNG with headless Chromium (`make pages`).

Starts `rtcheck serve` on a free loopback port over ``--db`` (default rtcheck.db, which
`make demo` fills), opens each page in Chromium through Selenium and chromedriver (Debian's
chromium and chromium-driver), runs a what-if that makes the cord limit 15 Gy, and writes one
whole-page PNG per page into ``--out``.

Usage: python scripts/render_pages.py [--db rtcheck.db] [--out pages]
"""

from __future__ import annotations

import argparse
import base64
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shoot(browser: Any, url: str, png: Path, action: Any = None) -> None:
    browser.set_window_size(1280, 900)
    browser.get(url)
    if action is not None:
        action(browser)
    # The whole page, beyond the window (Chrome DevTools' capture).
    height = int(
        browser.execute_script(
            "const b = document.body; return Math.ceil(Math.max(b.scrollHeight, "
            "b.getBoundingClientRect().bottom + window.scrollY, "
            "document.documentElement.scrollHeight)) + 20"
        )
    )
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "captureBeyondViewport": True, "format": "png",
        "clip": {"x": 0, "y": 0, "width": 1280, "height": min(height, 12000), "scale": 1},
    })  # fmt: skip
    png.write_bytes(base64.b64decode(shot["data"]))
    print(f"{png}: {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="rtcheck.db")
    parser.add_argument("--out", default="pages")
    args = parser.parse_args()
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        sys.exit("needs Debian's chromium and chromium-driver (apt-get install chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "rtcheck.cli", "serve", "--db", args.db,
                               "--port", str(port)])  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update"):  # fmt: skip
        options.add_argument(flag)
    browser = None
    try:
        for _ in range(100):
            try:
                plans = urllib.request.urlopen(base + "/api/plans?sort=decision").read()
                break
            except OSError:
                if server.poll() is not None:
                    sys.exit("rtcheck serve did not start")
                time.sleep(0.2)
        import json

        listed = json.loads(plans)["plans"]
        if not listed:
            sys.exit(f"{args.db} holds no plan: run `make demo` first")
        key = urllib.parse.quote(listed[0]["plan_key"], safe="")
        browser = webdriver.Chrome(service=Service(driver), options=options)
        shoot(browser, base + "/plans", out / "plans.png")
        shoot(browser, base + f"/plans/{key}", out / "plan.png")
        shoot(browser, base + f"/plans/{key}/report", out / "report.png")
        shoot(browser, base + "/limits", out / "limits.png")

        def first_limit(b: Any) -> None:
            b.find_element(By.CSS_SELECTOR, "#limit-keys tbody a").click()
            WebDriverWait(b, 60).until(lambda d: d.find_elements(By.ID, "nearest"))

        shoot(browser, base + "/limits", out / "limit.png", first_limit)

        def run_what_if(b: Any) -> None:
            area = b.find_element(By.ID, "text")
            text = area.get_property("value").replace('limit: "<= 45"', 'limit: "<= 15"', 1)
            b.execute_script("arguments[0].value = arguments[1];", area, text)
            b.find_element(By.ID, "run").click()
            WebDriverWait(b, 60).until(lambda d: d.find_elements(By.ID, "summary"))

        shoot(browser, base + "/whatif", out / "whatif.png", run_what_if)
        shoot(browser, base + "/check", out / "check.png")
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
