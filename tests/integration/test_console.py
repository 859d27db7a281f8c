"""The console in a real browser (headless Chromium driven by Selenium) against a real daemon,
the Tansu broker and the stub orchestration API: the pages read and change what the API
serves, and no page logs an error to the browser's console."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker

from .conftest import daemon_settings, produce, produce_many, wait_until
from .console_browser import Browser, LiveDaemon, live_daemon, new_topic

YAML_TRIGGER = {
    "name": "yaml-deposits",
    "event": "COMMITTED_TRANSACTIONS",
    "filter": "event.transactions[0].postings[0].destination == 'console:yaml'",
    "workflowID": "yaml-workflow",
}
READ_ONLY_TOKEN = "console-reader-token-0123456789"
_tx_ids = itertools.count(1)


def deposits(destination: str, count: int) -> list[bytes]:
    """`count` new events (each its own id) paying `destination`."""
    return [
        events.encode(events.committed_transaction(next(_tx_ids), 500, destination=destination))
        for _ in range(count)
    ]


def trigger_for(destination: str, name: str, workflow: str = "console-workflow") -> dict[str, Any]:
    return {
        "name": name,
        "event": "COMMITTED_TRANSACTIONS",
        "filter": f"event.transactions[0].postings[0].destination == '{destination}'",
        "workflowID": workflow,
        "vars": {"txid": "event.transactions[0].id"},
    }


class Console:
    """One daemon, its API client and the browser, shared by the tests of this module."""

    def __init__(self, system: LiveDaemon, url: str, topic: str, broker: TansuBroker) -> None:
        self.system = system
        self.url = url
        self.topic = topic
        self.broker = broker
        self.api = httpx.Client(base_url=url)
        self.browser = Browser()

    def close(self) -> None:
        self.browser.close()
        self.api.close()

    def create(self, trigger: dict[str, Any]) -> dict[str, Any]:
        answer = self.api.post("/v2/triggers", json=trigger)
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()["data"]
        return created

    def publish(self, values: list[bytes]) -> None:
        self.system.run(produce(self.broker.bootstrap_servers, self.topic, values))

    def occurrences(self, trigger_id: str) -> list[dict[str, Any]]:
        answer = self.api.get(f"/v2/triggers/{trigger_id}/occurrences", params={"pageSize": 100})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["cursor"]["data"]
        return found

    def wait_occurrences(self, trigger_id: str, count: int, status: str) -> None:
        def done() -> bool:
            found = self.occurrences(trigger_id)
            return len(found) == count and all(o["status"] == status for o in found)

        asyncio.run(wait_until(done, 30, f"{count} {status} occurrences of {trigger_id}"))

    def page(self, fragment: str) -> None:
        """Open `/ui/<fragment>` afresh (the same URL again is a reload, not a no-op)."""
        url = f"{self.url}/ui/{fragment}"
        if self.browser.driver.current_url == url:
            self.browser.driver.refresh()
        else:
            self.browser.open(url)

    def assert_no_console_errors(self, *expected_statuses: int) -> None:
        """No error in the browser's log but failed requests answering `expected_statuses`
        (Chromium logs every 4xx fetch, such as the refused form the test sent on purpose)."""
        unexpected = [
            entry
            for entry in self.browser.log_errors()
            if not (
                entry["source"] == "network"
                and any(f"status of {status}" in entry["message"] for status in expected_statuses)
            )
        ]
        assert unexpected == []


@pytest.fixture(scope="module")
def console(broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    topic = new_topic(broker, f"console-{uuid.uuid4().hex[:12]}")
    store = f"sqlite:///{tmp_path_factory.mktemp('console')}/store.db"

    def settings(stub_url: str) -> dict[str, Any]:
        return daemon_settings(
            broker,
            topic,
            stub_url,
            store,
            triggers=[YAML_TRIGGER],
            orchestration={"retry": {"max_attempts": 1}},
        )

    with live_daemon(settings) as (system, url):
        shared = Console(system, url, topic, broker)
        try:
            yield shared
        finally:
            shared.close()


def test_the_triggers_page_lists_yaml_and_api_triggers_with_their_counts(
    console: Console,
) -> None:
    created = console.create(trigger_for("console:listed", "api-listed"))
    console.publish(deposits("console:listed", 2))
    console.wait_occurrences(created["id"], 2, "succeeded")

    console.page("")
    browser = console.browser
    yaml_row = f'tr[data-trigger-id="{yaml_trigger_id("yaml-deposits")}"]'
    api_row = f'tr[data-trigger-id="{created["id"]}"]'
    browser.text_in(f"{api_row} .counts", "2 succeeded · 0 failed · 0 pending")
    assert browser.find(f"{yaml_row} .source").text == "YAML (read-only)"
    assert browser.find(f"{api_row} .source").text == "API"
    assert browser.find_all(f"{yaml_row} button") == []  # read-only: no delete
    assert browser.find(f"{api_row} button").text == "Delete"
    assert "event.transactions[0]" in browser.find(f"{yaml_row}").text
    health = browser.text_in("#health", "Circuit: ✓ closed").text
    assert "Readiness: ✓ ready" in health
    assert "Consumer lag: 0" in health
    assert re.search(r"Events/s \(last \d+ s\): \d+\.\d", health), health
    browser.screenshot("triggers")

    # Behind a gateway's path, the page talks to the API beside it.
    browser.open(f"{console.url}/api/orchestration/ui/")
    browser.text_in(f"{api_row} .counts", "2 succeeded")
    assert browser.find(f"{yaml_row} .source").text == "YAML (read-only)"

    browser.type_into("#trigger-search", "yaml-dep")
    browser.until(
        "the search to leave the YAML trigger only",
        lambda _: len(browser.find_all("#triggers-table tbody tr")) == 1,
    )
    assert browser.find_all(yaml_row)
    console.assert_no_console_errors()


def test_the_create_form_shows_the_error_at_the_field_and_a_created_trigger_fires(
    console: Console,
) -> None:
    browser = console.browser
    console.page("#/triggers")
    browser.find("details.panel summary").click()
    browser.type_into("#field-create-name", "made-in-the-browser")
    browser.type_into("#field-create-event", "COMMITTED_TRANSACTIONS")
    browser.type_into("#field-create-workflowID", "browser-workflow")
    browser.type_into("#field-create-filter", "a ==== b")
    browser.find("#create-form button[type=submit]").click()

    error = browser.text_in("#field-create-filter-error", "filter 'a ==== b'")
    assert error.is_displayed()
    assert browser.find("#field-create-filter").get_attribute("aria-invalid") == "true"
    assert not browser.find("#field-create-event-error").is_displayed()

    good = "event.transactions[0].postings[0].destination == 'console:made'"
    browser.type_into("#field-create-filter", good)
    browser.find("#create-form button[type=submit]").click()
    browser.text_in("#notice", "Created trigger made-in-the-browser")
    link = browser.until(
        "the new trigger in the list",
        lambda driver: driver.find_element(By.LINK_TEXT, "made-in-the-browser"),
    )
    trigger_id = link.get_attribute("href").rsplit("/", 1)[-1]

    console.publish(deposits("console:made", 1))
    console.wait_occurrences(trigger_id, 1, "succeeded")
    link.click()
    browser.text_in("#occurrences-table", "succeeded")

    console.page("#/triggers")
    browser.visible(f'tr[data-trigger-id="{trigger_id}"] button').click()
    browser.text_in(f'tr[data-trigger-id="{trigger_id}"]', "Delete made-in-the-browser?")
    browser.find(f'tr[data-trigger-id="{trigger_id}"] button.danger').click()
    browser.text_in("#notice", "Deleted trigger made-in-the-browser")
    browser.until(
        "the row to go", lambda _: not browser.find_all(f'[data-trigger-id="{trigger_id}"]')
    )
    assert console.api.get(f"/v2/triggers/{trigger_id}").status_code == 404
    console.assert_no_console_errors(400)


def test_a_trigger_page_pages_occurrences_and_runs_a_failed_one_again(console: Console) -> None:
    created = console.create(trigger_for("console:paging", "paged", workflow="flaky"))
    assert console.system.stub is not None
    console.system.stub.fail("flaky", 400)  # a permanent error: each occurrence fails at once
    console.publish(deposits("console:paging", 12))
    console.wait_occurrences(created["id"], 12, "failed")
    console.system.stub.heal()

    browser = console.browser
    console.page(f"#/trigger/{created['id']}")
    Select(browser.visible("#occ-page-size")).select_by_value("10")
    browser.find(".filters button[type=submit]").click()
    browser.text_in(".page-number", "Page 1")
    browser.until(
        "a page of 10",
        lambda _: len(browser.find_all("#occurrences-table tr[data-occurrence-id]")) == 10,
    )
    first_page = [
        r.get_attribute("data-occurrence-id") for r in browser.find_all("tr[data-occurrence-id]")
    ]
    browser.find("button.older").click()
    browser.text_in(".page-number", "Page 2")
    second_page = [
        r.get_attribute("data-occurrence-id") for r in browser.find_all("tr[data-occurrence-id]")
    ]
    assert len(second_page) == 2
    assert set(first_page).isdisjoint(second_page)
    assert not browser.find("button.older").is_enabled()
    browser.find("button.newer").click()
    browser.text_in(".page-number", "Page 1")

    def rows() -> list[Any]:
        return browser.find_all("tr[data-occurrence-id]")

    newest = browser.find("tr[data-occurrence-id]")
    occurrence_id = newest.get_attribute("data-occurrence-id")
    assert "failed" in newest.find_element(By.CSS_SELECTOR, ".status").text
    newest.find_element(By.CSS_SELECTOR, "button.open").click()
    browser.text_in(".occurrence-details .occurrence-error", "400")
    assert '"destination": "console:paging"' in browser.find(".occurrence-details").text
    browser.find("button.run-again").click()
    browser.text_in(".retry-outcome", "Ran again: ✓ succeeded")
    browser.text_in(f'tr[data-occurrence-id="{occurrence_id}"] .status', "succeeded")
    assert "workflow instance" in browser.find(".retry-outcome").text
    assert browser.find(".occurrence-details .instance").text != "—"
    assert not browser.find("button.run-again").is_displayed()  # succeeded: nothing to re-run
    browser.driver.execute_script(
        "arguments[0].scrollIntoView()", browser.find("#occurrences-title")
    )
    browser.screenshot("trigger")

    # Filtered by status, the 11 still failed, paged the same way; by time, none yet.
    Select(browser.find("#occ-status")).select_by_value("failed")
    browser.find(".filters button[type=submit]").click()
    browser.until(
        "the failed ones",
        lambda _: occurrence_id not in [r.get_attribute("data-occurrence-id") for r in rows()],
    )
    assert len(rows()) == 10
    assert {r.find_element(By.CSS_SELECTOR, ".status").text for r in rows()} == {"✗ failed"}
    browser.find("button.older").click()
    browser.text_in(".page-number", "Page 2")
    assert len(rows()) == 1
    set_value = "arguments[0].value = arguments[1]"
    browser.driver.execute_script(set_value, browser.find("#occ-since"), "2099-01-01T00:00:00")
    browser.find(".filters button[type=submit]").click()
    browser.text_in("#occurrences", "No occurrences.")
    console.assert_no_console_errors()


def test_the_test_panels_show_the_explanation(console: Console) -> None:
    created = console.create(trigger_for("console:tested", "tested"))
    console.publish(deposits("console:tested", 1))
    console.wait_occurrences(created["id"], 1, "succeeded")
    browser = console.browser

    # A saved trigger, against the event of one of its occurrences.
    console.page(f"#/trigger/{created['id']}")
    browser.visible("#occurrences-table")
    Select(browser.find("#test-pick")).select_by_index(1)
    browser.find("#test-form button[type=submit]").click()
    browser.text_in("#test-result .verdict", "✓ Match")
    assert "match" in browser.find("#test-result .decision").text

    # An unsaved trigger typed in the form.
    console.page("#/test")
    browser.type_into("#field-unsaved-event", "COMMITTED_TRANSACTIONS")
    browser.type_into("#field-unsaved-workflowID", "w")
    browser.type_into(
        "#field-unsaved-filter",
        "event.transactions[0].postings[0].asset == 'USD/2'"
        " && event.transactions[0].postings[0].amount > `1000`",
    )
    browser.type_into("#field-unsaved-vars", "txid = event.transactions[0].id")
    event = events.encode(events.committed_transaction(999_999, 500)).decode()
    browser.type_into("#field-unsaved-testEvent", event)
    browser.type_into("#field-unsaved-version", "x" * 65)  # refused as create refuses it
    browser.find("#unsaved-form button[type=submit]").click()
    browser.text_in("#field-unsaved-version-error", "version: String should have at most 64")
    browser.type_into("#field-unsaved-version", "v2")
    browser.find("#unsaved-form button[type=submit]").click()
    browser.text_in("#unsaved-result .verdict", "✗ No match")
    decision = browser.find("#unsaved-result .decision").text
    assert "clause 2 of 2" in decision
    assert "> `1000`" in browser.find("#unsaved-result .clauses").text
    assert "999999" in browser.find("#unsaved-result").text  # the var's value
    browser.driver.execute_script("window.scrollTo(0, 0)")
    browser.screenshot("test")

    # The event of a recent occurrence, any trigger's: the saved trigger's own event matches.
    picked = Select(browser.find("#unsaved-pick"))
    browser.until("recent events", lambda _: len(picked.options) > 1)
    picked.select_by_value(console.occurrences(created["id"])[0]["id"])
    assert "console:tested" in browser.find("#field-unsaved-testEvent").get_attribute("value")
    browser.type_into("#field-unsaved-filter", "event.transactions[0].postings[0].amount == `500`")
    browser.find("#unsaved-form button[type=submit]").click()
    browser.text_in("#unsaved-result .verdict", "✓ Match")
    console.assert_no_console_errors(400)


def test_a_backtest_runs_to_its_counts(console: Console) -> None:
    created = console.create(trigger_for("console:backtest", "backtested"))
    console.publish(deposits("console:backtest", 3))
    console.wait_occurrences(created["id"], 3, "succeeded")
    browser = console.browser

    console.page("#/backtests")
    Select(browser.visible("#field-backtest-triggerID")).select_by_value(created["id"])
    browser.type_into("#field-backtest-since", "1h")
    browser.find("#backtest-form button[type=submit]").click()
    card = "#backtest-list article"
    browser.text_in(card, "succeeded", within=60)
    counts = {
        element.get_attribute("data-count"): element.text
        for element in browser.find_all(f"{card}:first-child dd[data-count]")
    }
    assert counts["matched"] == "3"
    assert counts["alreadyOccurred"] == "3"
    assert int(counts["scanned"]) >= 3
    browser.find(f"{card}:first-child details summary").click()
    assert "Samples (3)" in browser.find(f"{card}:first-child details").text
    assert '"txid"' in browser.find(f"{card}:first-child details table").text

    # A long one (30,000 records that match nothing) is cancelled from its card.
    bulk = events.encode(events.committed_transaction(0, 1, destination="console:bulk"))
    console.system.run(
        produce_many(console.broker.bootstrap_servers, console.topic, [(None, bulk)] * 30_000)
    )
    browser.find("#backtest-form button[type=submit]").click()
    browser.visible(f"{card}:first-child button.cancel").click()
    browser.text_in(f"{card}:first-child h3", "cancelled")
    scanned = browser.find(f'{card}:first-child dd[data-count="scanned"]').text
    assert int(scanned) < 30_000
    console.assert_no_console_errors()


def test_a_backfill_runs_a_new_trigger_over_past_events(console: Console) -> None:
    # Handled live before the trigger exists (the YAML trigger's event after them says when):
    # the live pipeline runs nothing for them.
    yaml_id = yaml_trigger_id("yaml-deposits")
    marked = len(console.occurrences(yaml_id)) + 1
    console.publish(deposits("console:backfill", 3) + deposits("console:yaml", 1))
    console.wait_occurrences(yaml_id, marked, "succeeded")
    created = console.create(trigger_for("console:backfill", "backfilled"))
    browser = console.browser

    console.page("#/backtests")
    Select(browser.visible("#field-backfill-triggerID")).select_by_value(created["id"])
    browser.type_into("#field-backfill-since", "1h")
    browser.find("#backfill-form button[type=submit]").click()
    card = "#backfill-list article:first-child"
    browser.text_in(f"{card} h3", "succeeded", within=60)
    counts = {
        element.get_attribute("data-count"): element.text
        for element in browser.find_all(f"{card} dd[data-count]")
    }
    assert (counts["matched"], counts["ran"], counts["skipped"], counts["failed"]) == (
        "3",
        "3",
        "0",
        "0",
    )
    console.wait_occurrences(created["id"], 3, "succeeded")
    console.assert_no_console_errors()


def test_with_token_auth_the_console_asks_for_a_token_and_shows_401_and_403(
    broker: TansuBroker, tmp_path: Path
) -> None:
    topic = new_topic(broker, f"console-auth-{uuid.uuid4().hex[:12]}")
    store = f"sqlite:///{tmp_path}/store.db"

    def settings(stub_url: str) -> dict[str, Any]:
        auth = {
            "mode": "token",
            "tokens": [{"token": READ_ONLY_TOKEN, "scopes": ["orchestration:read"]}],
        }
        return daemon_settings(
            broker, topic, stub_url, store, triggers=[YAML_TRIGGER], api={"auth": auth}
        )

    with live_daemon(settings) as (_, url):
        browser = Browser()
        try:
            browser.open(f"{url}/ui/")
            browser.text_in("#auth-message", "asks for a bearer token")
            assert "401" in browser.find("#auth-message").text
            browser.type_into("#auth-token", "wrong-token-wrong-token")
            browser.find("#auth-form button").click()
            browser.text_in("#auth-message", "refused this token")
            assert "Not signed in (401)" in browser.find("#auth-message").text

            browser.type_into("#auth-token", READ_ONLY_TOKEN)
            browser.find("#auth-form button").click()
            browser.text_in("#triggers-table", "yaml-deposits")
            assert not browser.find("#auth").is_displayed()
            browser.text_in("#health", "Circuit: ✓ closed")  # the status, with the token
            browser.find("details.panel summary").click()
            browser.type_into("#field-create-event", "COMMITTED_TRANSACTIONS")
            browser.type_into("#field-create-workflowID", "w")
            browser.find("#create-form button[type=submit]").click()
            refused = browser.text_in("#create-form .form-error", "Not allowed (403)").text
            assert "orchestration:write" in refused

            errors = browser.log_errors()
            assert {e["source"] for e in errors} == {"network"}
            statuses = {re.search(r"status of (\d+)", e["message"]).group(1) for e in errors}
            assert statuses == {"401", "403"}
        finally:
            browser.close()


PAGES = {
    "": "#triggers-table",
    f"#/trigger/{yaml_trigger_id('yaml-deposits')}": "#occurrences",
    "#/test": "#unsaved-form",
    "#/backtests": "#backtest-form",
}
UNLABELLED_CONTROLS = """
return [...document.querySelectorAll('input, select, textarea')]
  .filter((control) => control.labels.length === 0)
  .map((control) => control.id || control.name);
"""


def test_every_page_fits_a_phone_labels_its_inputs_and_works_from_the_keyboard(
    console: Console,
) -> None:
    browser = console.browser
    driver = browser.driver
    driver.set_window_size(390, 844)
    try:
        for fragment, content in PAGES.items():
            console.page(fragment)
            browser.visible(content)
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{fragment or 'triggers'} is {overflow} px too wide"
            assert driver.execute_script(UNLABELLED_CONTROLS) == [], fragment
    finally:
        driver.set_window_size(1280, 900)

    console.page("")
    browser.visible("#triggers-table")
    body = driver.find_element(By.TAG_NAME, "body")
    for _ in range(10):  # the brand, then the page links
        body = driver.switch_to.active_element
        if body.text == "Test":
            break
        body.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Test"
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    browser.text_in("main h1", "Test a trigger")
    console.assert_no_console_errors()
