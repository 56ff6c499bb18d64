# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Load a report.html in real headless Debian chromium (selenium + chromedriver): what the page
shows, the browser's console messages, and a screenshot under build/test-artifacts/."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[4] / "build" / "test-artifacts"
CHROMIUM = os.environ.get("FLEET_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FLEET_CHROMEDRIVER", "/usr/bin/chromedriver")


def missing() -> str | None:
    """Why the browser check cannot run here (None: it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is not installed (bindep.txt: chromium, chromium-driver)"
    return None


def inspect(page: Path, screenshot_name: str) -> dict:
    """Open ``page`` (a file) and return what the browser saw; the screenshot is kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
                 # no network at all: any fetch the page tried would fail and be logged
                 "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(page.resolve().as_uri())
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / screenshot_name
        driver.save_screenshot(str(shot))
        cells = driver.find_elements(By.CSS_SELECTOR, "#matrix td[data-status]")
        rects = driver.find_elements(By.CSS_SELECTOR, "svg#timeline rect[data-stage]")
        bars = driver.find_elements(By.CSS_SELECTOR, "svg#timeline g.bar")
        timeline = driver.find_element(By.CSS_SELECTOR, "svg#timeline")
        return {
            "title": driver.title,
            "console": driver.get_log("browser"),
            "statuses": {(c.find_element(By.XPATH, "./ancestor::tr").get_attribute("data-node"), i): c.get_attribute("data-status")
                         for i, c in enumerate(cells)},
            "cells": [(c.find_element(By.XPATH, "./ancestor::tr").get_attribute("data-node"), c.get_attribute("data-status"),
                       c.value_of_css_property("background-color")) for c in cells],
            "matrix_rows": [r.get_attribute("data-node") for r in driver.find_elements(By.CSS_SELECTOR, "#matrix tbody tr")],
            "bars": [b.get_attribute("data-node") for b in bars],
            "rects": len(rects),
            "rect_widths": [float(r.get_attribute("width")) for r in rects],
            "timeline_size": timeline.size,
            "summary": driver.find_element(By.ID, "summary").text,
            "body": driver.find_element(By.TAG_NAME, "body").text,
            "scripts": len(driver.find_elements(By.TAG_NAME, "script")),
            "screenshot": shot,
        }
    finally:
        driver.quit()


def inspect_compliance(page: Path, screenshot_name: str) -> dict:
    """Open a compliance.html (a file): its rows, cells' colours, console messages; the screenshot is kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
                 "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(page.resolve().as_uri())
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / screenshot_name
        driver.save_screenshot(str(shot))
        rows = driver.find_elements(By.CSS_SELECTOR, "#compliance tbody tr")
        return {
            "console": driver.get_log("browser"),
            "rows": [(r.get_attribute("data-node"), r.get_attribute("data-component")) for r in rows],
            "at": {(r.get_attribute("data-node"), r.get_attribute("data-component")):
                   (r.find_element(By.CSS_SELECTOR, "td[data-at]").get_attribute("data-at"),
                    r.find_element(By.CSS_SELECTOR, "td[data-at]").value_of_css_property("background-color")) for r in rows},
            "drift": {(r.get_attribute("data-node"), r.get_attribute("data-component")):
                      r.find_element(By.CSS_SELECTOR, "td[data-drift]").text for r in rows},
            "summary": driver.find_element(By.ID, "summary").text,
            "body": driver.find_element(By.TAG_NAME, "body").text,
            "scripts": len(driver.find_elements(By.TAG_NAME, "script")),
            "screenshot": shot,
        }
    finally:
        driver.quit()
