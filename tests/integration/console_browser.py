"""What the console's browser tests run on: a daemon and the stub orchestration API in an
event loop of their own thread (the test's browser calls block), and headless Chromium driven
by Selenium, both on 127.0.0.1 and stopped by the fixtures that start them."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from trigger_daemon.app import Daemon
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import in_process, wait_until

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 20
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


class LiveDaemon:
    """The stub and a daemon (settings from `settings(stub_url)`), in a thread's event loop."""

    def __init__(self, settings: Callable[[str], dict[str, Any]]) -> None:
        self._settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started: Future[str] = Future()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self.stub: StubOrchestration | None = None

    async def _main(self) -> None:
        try:
            async with StubOrchestration() as stub:
                self.stub = stub
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                daemon = Daemon(in_process(self._settings(stub.url)))
                running = asyncio.create_task(daemon.run(self._stop))
                url = await asyncio.wait_for(daemon.wait_api_started(), 30)
                self._started.set_result(url)
                await running
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            raise

    def start(self) -> str:
        """Start both; the daemon's API URL once it has joined its consumer group."""
        self._thread.start()
        url = self._started.result(timeout=60)
        with httpx.Client(base_url=url) as client:
            asyncio.run(
                wait_until(lambda: client.get("/readyz").status_code == 200, 30, "readiness")
            )
        return url

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Await `work` in the daemon's loop."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@contextmanager
def live_daemon(settings: Callable[[str], dict[str, Any]]) -> Iterator[tuple[LiveDaemon, str]]:
    system = LiveDaemon(settings)
    try:
        url = system.start()
        yield system, url
    finally:
        system.stop()


def new_topic(broker: TansuBroker, name: str) -> str:
    asyncio.run(broker.create_topics([name], partitions=1))
    return name


class Browser:
    """Headless Chromium at 1280 px; `log_errors()` reads (and empties) the browser's log."""

    def __init__(self) -> None:
        for path in (CHROMIUM, CHROMEDRIVER):
            if not shutil.which(path):
                raise AssertionError(f"{path} is missing: apt-get install chromium chromium-driver")
        options = Options()
        options.binary_location = CHROMIUM
        for argument in (
            "--headless=new",
            "--no-sandbox",  # the tests may run as root
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(
            options=options, service=Service(executable_path=CHROMEDRIVER, port=0)
        )

    def close(self) -> None:
        self.driver.quit()

    def open(self, url: str) -> None:
        self.driver.get(url)

    def until(self, what: str, condition: Callable[[Any], T], within: float = WAIT_SECONDS) -> T:
        """`condition(driver)`'s first truthy value, polled every 0.1 s for `within` s. An
        element missing, or replaced while it was read (the page redraws), counts as not yet."""
        wait = WebDriverWait(
            self.driver,
            within,
            poll_frequency=0.1,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )
        return wait.until(condition, f"timed out waiting for {what}")

    def visible(self, css: str, within: float = WAIT_SECONDS) -> WebElement:
        located = expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))
        element: WebElement = self.until(f"{css} to be visible", located, within)
        return element

    def text_in(self, css: str, text: str, within: float = WAIT_SECONDS) -> WebElement:
        present = expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)
        self.until(f"{text!r} in {css}", present, within)
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def type_into(self, css: str, text: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(text)

    def log_errors(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.driver.get_log("browser")
        return [entry for entry in entries if entry["level"] == "SEVERE"]

    def screenshot(self, name: str) -> None:
        """docs/console/<name>.png, only when TRIGGER_DAEMON_SCREENSHOTS=1 asks for it."""
        if os.environ.get("TRIGGER_DAEMON_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
