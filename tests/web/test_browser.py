"""The dashboard in a real browser: `rtcheck serve` started on a free loopback port over a
real results database, Debian's Chromium driven by Selenium through chromedriver. A user opens
the plans, filters them, opens a plan, runs a what-if and uploads a plan."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.network.peers import require
from tests.web.conftest import Served

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(archive_db, tmp_path_factory) -> Iterator[str]:
    _, db = archive_db
    served = Served(db, tmp_path_factory.mktemp("serve") / "serve.log")
    yield served.url
    served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(CHROMEDRIVER, "chromium-driver")
    require(CHROMIUM, "chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def follow(browser: Any, element: Any) -> None:
    """Click what leads to another page, and wait until that page has replaced this one: a
    click returns before a form's answer arrives."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 120).until(expected_conditions.staleness_of(old))
    WebDriverWait(browser, 120).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def rows(browser: Any, table: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [r.text for r in browser.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")]


def test_filter_the_plans_and_open_one(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server + "/")
    assert browser.current_url.endswith("/plans")
    assert len(rows(browser, "plans")) == 3
    Select(browser.find_element(By.ID, "decision")).select_by_value("excluded")
    follow(browser, browser.find_element(By.ID, "apply"))
    found = rows(browser, "plans")
    assert len(found) == 1 and "excluded" in found[0]
    assert '<script>alert("x")</script>' in found[0]  # shown as text, never run
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#plans tbody a"))
    assert browser.find_element(By.ID, "decision").text == "excluded"
    assert len(rows(browser, "history")) == 1
    assert any("SpinalCord" in r and "fail" in r for r in rows(browser, "limits"))
    follow(browser, browser.find_element(By.ID, "report"))
    assert "EXCLUDED" in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.CSS_SELECTOR, "figure.dvh svg")


def test_run_a_what_if(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/whatif")
    area = browser.find_element(By.ID, "text")
    text = area.get_property("value")
    old = 'metric: "D0.03cc[Gy]", limit: "<= 45"'
    assert old in text
    new = text.replace(old, 'metric: "D0.03cc[Gy]", limit: "<= 15"', 1)
    browser.execute_script("arguments[0].value = arguments[1];", area, new)
    follow(browser, browser.find_element(By.ID, "run"))
    summary = browser.find_element(By.ID, "summary").text
    assert "3 plans judged" in summary and "1 change decision" in summary
    changed = rows(browser, "changed")
    assert len(changed) == 1 and "not_excluded" in changed[0] and "<= 15" in changed[0]


def test_upload_a_plan(server, browser, archive_db):
    from selenium.webdriver.common.by import By

    archive, _ = archive_db
    browser.get(server + "/check")
    files = "\n".join(str(p) for p in sorted((archive / "p1").glob("*.dcm")))
    browser.find_element(By.ID, "files").send_keys(files)
    follow(browser, browser.find_element(By.ID, "submit"))
    assert "NOT EXCLUDED" in browser.find_element(By.TAG_NAME, "body").text


def test_a_limit_across_the_archive(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/limits")
    follow(browser, browser.find_element(By.LINK_TEXT, "SpinalCord"))
    assert len(browser.find_elements(By.CSS_SELECTOR, ".figure svg")) == 2
    assert rows(browser, "nearest")
