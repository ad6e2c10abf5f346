"""Opens every page of a Kiln web UI in a real browser (headless Chromium through
chromium-driver, driven by Selenium), checks the DOM against what the Rust test ran, and
saves a screenshot of each page.

Input (JSON on stdin): {"url", "screenshots", "job", "stages", "failed_job", "executors",
"fit", "points", "model"}. Output (JSON): {"pages": [names], "screenshots": [paths]}.
"""

import json
import os
import shutil
import sys

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def browser() -> webdriver.Chrome:
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def main() -> None:
    want = json.load(sys.stdin)
    base = want["url"].rstrip("/")
    os.makedirs(want["screenshots"], exist_ok=True)
    shots, pages = [], []
    driver = browser()
    try:
        def visit(name: str, path: str) -> None:
            driver.get(base + path)
            assert "Kiln" in driver.title, (path, driver.title)
            shot = os.path.join(want["screenshots"], f"{name}.png")
            driver.save_screenshot(shot)
            shots.append(shot)
            pages.append(name)

        visit("jobs", "/")
        rows = driver.find_elements(By.CSS_SELECTOR, "#jobs tr.job")
        ids = [r.get_attribute("data-job") for r in rows]
        assert want["job"] in ids, ids
        row = driver.find_element(By.CSS_SELECTOR, f'#jobs tr.job[data-job="{want["job"]}"]')
        assert row.find_element(By.CSS_SELECTOR, "td.stages").text == f'{want["stages"]}/{want["stages"]}'

        # Following the link, as a person would.
        row.find_element(By.TAG_NAME, "a").click()
        assert driver.current_url.endswith(f'/jobs/{want["job"]}'), driver.current_url
        visit("job", f'/jobs/{want["job"]}')
        assert driver.find_element(By.ID, "status").text == "succeeded"
        stages = driver.find_elements(By.CSS_SELECTOR, "#stages tr.stage")
        assert len(stages) == want["stages"], len(stages)
        boxes = driver.find_elements(By.CSS_SELECTOR, "#dag g.stage")
        assert len(boxes) == want["stages"], len(boxes)
        first = stages[0].get_attribute("data-stage")

        visit("stage", f'/jobs/{want["job"]}/stages/{first}')
        tasks = driver.find_elements(By.CSS_SELECTOR, "#tasks tr.task")
        bars = driver.find_elements(By.CSS_SELECTOR, "#timeline rect.attempt")
        assert tasks and len(bars) == len(tasks), (len(tasks), len(bars))

        visit("failed-job", f'/jobs/{want["failed_job"]}')
        assert driver.find_element(By.ID, "status").text == "failed"
        assert driver.find_element(By.ID, "failure").text.strip(), "a failed job shows its failure"

        visit("executors", "/executors")
        executors = driver.find_elements(By.CSS_SELECTOR, "#executors tr.executor")
        assert len(executors) == want["executors"], len(executors)

        visit("training", "/training")
        assert driver.find_elements(By.CSS_SELECTOR, f'#fits tr.fit[data-fit="{want["fit"]}"]')
        visit("fit", f'/training/{want["fit"]}')
        points = driver.find_elements(By.CSS_SELECTOR, "svg#loss circle.point")
        assert len(points) == want["points"], (len(points), want["points"])
        assert driver.find_element(By.CSS_SELECTOR, "svg#loss polyline.line").is_displayed()

        visit("models", "/models")
        assert driver.find_elements(By.CSS_SELECTOR, f'#models tr.model[data-model="{want["model"]}"]')
        report = driver.find_element(By.CSS_SELECTOR, "table.report").text
        assert "communication overhead" in report and "utilization" in report, report
    finally:
        driver.quit()
    json.dump({"pages": pages, "screenshots": shots}, sys.stdout)


if __name__ == "__main__":
    main()
