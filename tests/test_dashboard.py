"""The dashboard in a real headless browser (Debian's chromium, driven by Selenium) against a
live server holding the 30-day demo data: the numbers shown are the API's, the CSV is the
table, a shared URL comes back as it was, a wrong key is told so. Each view is
screenshotted; with OPENUSAGE_SCREENSHOTS=1 the shots replace docs/images/ (the README shows
them), else they go to a temporary directory, so a test run leaves the checkout as it was."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from .conftest import Server, event, run_cli, start_server, stop_server

DOCS_IMAGES = Path(__file__).parent.parent / "docs" / "images"
DAY = 86400
#: amounts are exact to many places; the table shows nine: a total within one unit of the ninth
SHOWN = Decimal("0.000000001")


def screenshot(browser: webdriver.Chrome, name: str) -> None:
    if os.environ.get("OPENUSAGE_SCREENSHOTS") == "1":
        folder = DOCS_IMAGES
    else:
        folder = Path(tempfile.gettempdir()) / "openusage-screenshots"
        folder.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(folder / name)), f"no screenshot of {name}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("dashboard")
    made = run_cli("demo", "--days", "30", "--db", str(tmp / "usage.duckdb"))
    assert made.returncode == 0, made.stderr
    running = start_server(tmp)
    with running.client() as c:
        limit = {"currency": "USD", "interval": "month", "threshold_amount": 500_000}
        assert c.post("/organization/spend_limit", json=limit).status_code == 200
    # Usage the price book has no price for, which the spend view must show.
    mystery = event("completions", int(time.time()) - 3600, model="mystery-model", input_tokens=4321)
    running.ingest_ok([mystery])
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options
    )
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads  # type: ignore[attr-defined]
    yield driver
    driver.quit()


def wait_for(driver: webdriver.Chrome, check: Any, what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, (
            f"{what}; the page says: {driver.find_element(By.ID, 'status').text!r}"
        )
        time.sleep(0.05)


def draws(driver: webdriver.Chrome) -> int:
    return int(
        driver.execute_script("return window.dashboardTimings ? window.dashboardTimings.draws : 0") or 0
    )


def redrawn(driver: webdriver.Chrome, before: int) -> float:
    """Wait for the next draw; how long it took in the page (ms)."""
    wait_for(driver, lambda: draws(driver) > before, "the page did not draw again")
    return float(driver.execute_script("return window.dashboardTimings.lastDraw"))


def sign_in(driver: webdriver.Chrome, server: Server, url: str = "/") -> float:
    """Open ``url`` with a fresh tab state, enter the key; ms until the first chart was drawn."""
    driver.get(server.base_url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(server.base_url + url)
    wait_for(driver, lambda: driver.find_element(By.ID, "key").is_displayed(), "no key field")
    driver.find_element(By.ID, "key").send_keys(server.admin_key)
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    wait_for(driver, lambda: draws(driver) >= 1, "no chart after the key")
    return float(driver.execute_script("return window.dashboardTimings.firstChart"))


def table(driver: webdriver.Chrome) -> tuple[list[str], list[list[str]], list[str]]:
    head = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#table thead th")]
    rows = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in driver.find_elements(By.CSS_SELECTOR, "#table tbody tr")
    ]
    foot = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#table tfoot td")]
    return head, rows, foot


def day_range(driver: webdriver.Chrome) -> tuple[int, int]:
    start = driver.find_element(By.ID, "start").get_attribute("value") or ""
    end = driver.find_element(By.ID, "end").get_attribute("value") or ""
    first = int(time.mktime(time.strptime(start, "%Y-%m-%d"))) - time.timezone
    last = int(time.mktime(time.strptime(end, "%Y-%m-%d"))) - time.timezone + DAY
    return first, min(last, int(time.time()))


def test_a_wrong_key_is_told_so(demo: Server, browser: webdriver.Chrome) -> None:
    browser.get(demo.base_url + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(demo.base_url + "/")
    browser.find_element(By.ID, "key").send_keys("sk-admin-wrong-" + "w" * 30)
    browser.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    message = wait_for(browser, lambda: browser.find_element(By.ID, "login-error").text, "no message")
    assert "not accepted" in message and "Incorrect API key" in message
    assert "sk-admin-wrong" not in browser.current_url


def test_spend_shows_the_costs_the_api_returns_with_the_limit_and_a_csv_of_the_table(
    demo: Server, browser: webdriver.Chrome
) -> None:
    first_chart = sign_in(browser, demo)
    print(f"\nfirst chart drawn {first_chart:.0f} ms after the key was entered (target 1,000)")
    assert demo.admin_key not in browser.current_url
    head, rows, foot = table(browser)
    assert head == ["day", "line item", "amount (USD)"]
    start, end = day_range(browser)
    costs = demo.walk(
        "/organization/costs", {"start_time": start, "end_time": end, "limit": 180, "group_by": "line_item"}
    )
    expected = sum(Decimal(str(r["amount"]["value"])) for b in costs for r in b["results"])
    assert abs(Decimal(foot[2]) - expected) <= SHOWN  # the total, to the places it shows
    assert len(rows) == sum(len(b["results"]) for b in costs)
    cards = browser.find_element(By.ID, "cards").text
    assert "Spend limit (organization)" in cards and "$5,000.00" in cards
    month_start = (
        int(time.mktime(time.strptime(time.strftime("%Y-%m-01", time.gmtime()), "%Y-%m-%d"))) - time.timezone
    )
    month = demo.walk("/organization/costs", {"start_time": month_start, "limit": 31})
    month_total = sum(Decimal(str(r["amount"]["value"])) for b in month for r in b["results"])
    assert f"${month_total:,.2f}" in cards  # this month's total, to the cent
    unpriced = browser.find_element(By.ID, "unpriced").text
    assert "mystery-model, input (unpriced): 4,321" in unpriced
    screenshot(browser, "dashboard-spend.png")

    browser.find_element(By.ID, "download").click()
    files = wait_for(browser, lambda: list(browser.downloads.glob("*.csv")), "no CSV downloaded")  # type: ignore[attr-defined]
    downloaded = list(csv.reader(io.StringIO(files[0].read_text())))
    assert downloaded[0] == head
    assert [(r[0][:10], r[1], r[2]) for r in downloaded[1:]] == [
        tuple(r) for r in rows
    ]  # the table, row by row


def test_changing_filters_and_stacking_redraws_with_the_apis_numbers(
    demo: Server, browser: webdriver.Chrome
) -> None:
    sign_in(browser, demo)
    before = draws(browser)
    Select(browser.find_element(By.ID, "stack")).select_by_value("project")
    print(f"\nredrawn by project in {redrawn(browser, before):.0f} ms (target 300)")
    project_options = Select(browser.find_element(By.ID, "project")).options
    project = project_options[1].get_attribute("value") or ""
    before = draws(browser)
    Select(browser.find_element(By.ID, "project")).select_by_value(project)
    print(f"filtered to a project in {redrawn(browser, before):.0f} ms (target 300)")
    _, rows, foot = table(browser)
    start, end = day_range(browser)
    costs = demo.walk(
        "/organization/costs",
        {"start_time": start, "end_time": end, "limit": 180, "group_by": "line_item", "project_ids": project},
    )
    expected = sum(Decimal(str(r["amount"]["value"])) for b in costs for r in b["results"])
    assert abs(Decimal(foot[2]) - expected) <= SHOWN
    assert len({r[1] for r in rows}) == 1 and project in rows[0][1]  # stacked by the one project
    assert f"project={project}" in browser.current_url and "stack=project" in browser.current_url


def test_usage_views_group_by_any_field_and_match_the_api(demo: Server, browser: webdriver.Chrome) -> None:
    sign_in(browser, demo, "/?view=usage")
    _, _, foot = table(browser)
    start, end = day_range(browser)
    data = demo.walk(
        "/organization/usage/completions",
        {"start_time": start, "end_time": end, "bucket_width": "1d", "limit": 31},
    )
    sums = [
        sum(r[m] for b in data for r in b["results"])
        for m in ("input_uncached_tokens", "input_cached_tokens", "output_tokens")
    ]
    assert [int(v.replace(",", "")) for v in foot[2:]] == sums
    screenshot(browser, "dashboard-usage.png")
    for kind, group in (("completions", "model"), ("images", "size"), ("web_search_calls", "context_level")):
        kinds = Select(browser.find_element(By.ID, "kind"))
        if kinds.first_selected_option.get_attribute("value") != kind:
            before = draws(browser)
            kinds.select_by_value(kind)
            redrawn(browser, before)
        before = draws(browser)
        Select(browser.find_element(By.ID, "group")).select_by_value(group)
        redrawn(browser, before)
        head, rows, foot = table(browser)
        assert head[1] == group
        metric = head[2]
        grouped = demo.walk(
            f"/organization/usage/{kind}",
            {"start_time": start, "end_time": end, "bucket_width": "1d", "limit": 31, "group_by": group},
        )
        assert int(foot[2].replace(",", "")) == sum(r[metric] for b in grouped for r in b["results"])
        assert {r[1] for r in rows} <= {
            str(r[group]) if r[group] is not None else "(none)" for b in grouped for r in b["results"]
        }
    screenshot(browser, "dashboard-usage-grouped.png")


def test_a_shared_url_comes_back_as_it_was(demo: Server, browser: webdriver.Chrome) -> None:
    sign_in(browser, demo, "/?view=usage&kind=images&group=size&bucket=1d")
    assert (
        Select(browser.find_element(By.ID, "kind")).first_selected_option.get_attribute("value") == "images"
    )
    assert Select(browser.find_element(By.ID, "group")).first_selected_option.get_attribute("value") == "size"
    shared = browser.current_url
    browser.get(shared)  # a reload: the key is still in this tab
    wait_for(browser, lambda: draws(browser) >= 1, "no chart after reload")
    assert browser.current_url == shared and table(browser)[0][1] == "size"


def test_costs_of_180_days_by_line_item(demo: Server, browser: webdriver.Chrome) -> None:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    first = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 179 * DAY))
    sign_in(browser, demo, f"/?start={first}&end={today}")
    took = browser.execute_script("return window.dashboardTimings.lastDraw")
    print(f"\n180 days of costs by line item: {took:.0f} ms (target 1,000)")
    assert table(browser)[2][0] == "total"


def test_the_views_and_filters_work_from_the_keyboard(demo: Server, browser: webdriver.Chrome) -> None:
    from selenium.webdriver.common.keys import Keys

    sign_in(browser, demo)
    usage = browser.find_element(By.ID, "view-usage")
    browser.execute_script("arguments[0].focus()", browser.find_element(By.ID, "view-spend"))
    browser.switch_to.active_element.send_keys(Keys.TAB)  # from Spend to Usage
    assert browser.switch_to.active_element == usage
    before = draws(browser)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    redrawn(browser, before)
    assert usage.get_attribute("aria-pressed") == "true" and "view=usage" in browser.current_url
    group = browser.find_element(By.ID, "group")
    browser.execute_script("arguments[0].focus()", group)
    before = draws(browser)
    group.send_keys(Keys.ARROW_DOWN)  # the next grouping, chosen with the keyboard
    redrawn(browser, before)
    assert table(browser)[0][1] == Select(group).first_selected_option.get_attribute("value")


def test_the_page_fits_a_phone_and_keeps_to_its_own_origin(demo: Server, browser: webdriver.Chrome) -> None:
    browser.set_window_size(390, 844)
    try:
        sign_in(browser, demo)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390 + 1, width
        screenshot(browser, "dashboard-phone.png")
    finally:
        browser.set_window_size(1280, 1000)
    sources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert sources and all(s.startswith(demo.base_url) for s in sources), sources
